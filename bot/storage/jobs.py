"""Jobs and the bot processes that follow them (`jobs`, `instances`).

Every job a member started is recorded before it is queued, with what its message needs (the
interaction's token), until the message that ends it is delivered. Each bot process writes a
heartbeat; the jobs of a process that has gone are orphans, which another process adopts with a
conditional claim that one process wins (bot/cogs/recovery.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.engine.params import InvalidParams, StyleParams
from bot.protocol.messages import JobStatus
from bot.storage.blobs import BlobStore, result_key
from bot.storage.db import Database, blobs, instances, jobs

HOST = socket.gethostname()
STARTED = time.time()  # about when this process started


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    id: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    application_id: int
    token: str
    token_expires_at: float
    state: JobStatus
    # the job's parameters, parsed once where the row is read; None when another version wrote
    # ones this one cannot read (`unreadable` says why)
    params: StyleParams | None
    summary: str
    styles: int
    outcome: str | None = None
    delivered: bool = False
    attempts: int = 0
    message_id: int | None = None
    created_at: float = 0.0
    instance: str = ""  # the bot process that follows it
    content_owner: int | None = None  # who uploaded the content; None: user_id
    result_limit: int | None = None  # bytes the result may take; None: not known
    unreadable: str = ""  # why `params` is None

    def style_params(self) -> StyleParams:
        """The job's parameters; InvalidParams when this version cannot read them."""
        if self.params is None:
            raise InvalidParams(self.unreadable or "the job's parameters cannot be read")
        return self.params

    @property
    def token_alive(self) -> bool:
        return time.time() < self.token_expires_at

    @property
    def uploader(self) -> int:
        """The member whose upload the job paints (guild_policy.may_reveal)."""
        return self.content_owner or self.user_id


class JobStore:
    def __init__(self, db: Database, blobs: BlobStore):
        self.db, self.blobs = db, blobs
        self.instance = uuid.uuid4().hex  # this process, in the jobs it records

    async def add(self, record: JobRecord, inputs: list[bytes], *, keep_inputs: float) -> None:
        """Record a job and keep its input images for `keep_inputs` seconds (for Retry)."""
        now = time.time()
        async with self.db.engine.begin() as conn:
            await conn.execute(
                jobs.insert().values(
                    id=record.id,
                    instance=self.instance,
                    user_id=record.user_id,
                    guild_id=record.guild_id,
                    channel_id=record.channel_id,
                    application_id=record.application_id,
                    token=record.token,
                    token_expires_at=record.token_expires_at,
                    state=record.state.value,
                    params=json.dumps(record.style_params().to_dict()),
                    summary=record.summary,
                    styles=record.styles,
                    content_owner=record.content_owner,
                    result_limit=record.result_limit,
                    outcome=None,
                    delivered=False,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self.blobs.use_images(conn, record.id, inputs, now + keep_inputs)

    async def images(self, job_id: str) -> list[bytes] | None:
        """The job's content and style images, in order; None once they are no longer kept."""
        return await self.blobs.images(job_id)

    async def refused(self, job_id: str, outcome: str) -> None:
        """The queue refused the job (its member was told privately): its images go now, its
        token too; the row stays for `purge`'s audit window."""
        async with self.db.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state=JobStatus.REFUSED.value,
                    outcome=outcome,
                    delivered=True,
                    token="",
                    token_expires_at=0.0,
                    updated_at=time.time(),
                )
            )
            await self.blobs.drop_uses(conn, [job_id])

    async def purge(self, *, refused_after: float) -> int:
        """No token outlives its life (15 minutes) in the table, and a refused job's row goes
        `refused_after` seconds after its refusal; the number of rows removed."""
        now = time.time()
        async with self.db.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.token_expires_at <= now, jobs.c.token != "")
                .values(token="")
            )
            removed = await conn.execute(
                jobs.delete().where(
                    jobs.c.state == JobStatus.REFUSED.value,
                    jobs.c.updated_at <= now - refused_after,
                )
            )
        return removed.rowcount or 0

    async def drop_images(self, job_id: str) -> None:
        """A job that was refused keeps no images: its uses go, and every image no job uses."""
        async with self.db.engine.begin() as conn:
            await self.blobs.drop_uses(conn, [job_id])

    async def set_state(
        self,
        job_id: str,
        state: JobStatus,
        *,
        outcome: str | None = None,
        delivered: bool | None = None,
        message_id: int | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state.value, "updated_at": time.time()}
        if outcome is not None:
            values["outcome"] = outcome
        if delivered is not None:
            values["delivered"] = delivered
        if message_id is not None:
            values["message_id"] = message_id
        async with self.db.engine.begin() as conn:
            await conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    async def get(self, job_id: str) -> JobRecord | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).first()
        return record_of(row) if row else None

    async def heartbeat(self) -> None:
        """This process is alive (the jobs it follows are not orphans)."""
        here = {"host": HOST, "pid": os.getpid()}
        statement = self.db.upsert(
            instances,
            {"id": self.instance, "seen_at": time.time(), **here},
            "id",
            {"seen_at": time.time(), **here},
        )
        async with self.db.engine.begin() as conn:
            await conn.execute(statement)

    async def orphaned(self, *, silent_for: float) -> list[JobRecord]:
        """Jobs still queued or running whose bot process is gone: on this host, a process
        whose pid no longer runs (known at once); elsewhere, one not seen for `silent_for`
        seconds. Nobody follows them any more."""
        alive = sa.select(instances.c.id).where(instances.c.seen_at > time.time() - silent_for)
        async with self.db.engine.connect() as conn:
            neighbours = (
                await conn.execute(
                    sa.select(instances.c.id, instances.c.pid, instances.c.seen_at).where(
                        instances.c.host == HOST, instances.c.id != self.instance
                    )
                )
            ).all()
            dead = [n.id for n in neighbours if n.pid is not None and gone(n.pid, n.seen_at)]
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.state.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                        jobs.c.instance != self.instance,
                        sa.or_(jobs.c.instance.not_in(alive), jobs.c.instance.in_(dead)),
                    )
                    .order_by(jobs.c.created_at)
                )
            ).all()
        return [record_of(r) for r in rows]

    async def adopt(self, record: JobRecord) -> bool:
        """This process follows the orphaned job from now on, if no other process took it first:
        a conditional update on the instance it was found with, so one process wins."""
        async with self.db.engine.begin() as conn:
            taken = await conn.execute(
                jobs.update()
                .where(jobs.c.id == record.id, jobs.c.instance == record.instance)
                .values(instance=self.instance, updated_at=time.time())
            )
        return taken.rowcount == 1

    async def claim_delivery(self, record: JobRecord, *, lease: float) -> bool:
        """This process tries the undelivered ending now, if no other process does: a lease of
        `lease` seconds (`updated_at` in the future: no other process claims the row before it
        has passed, however long this try takes), one try counted per claim, conditional on the
        count it was found with. `release_delivery` ends the lease of a try that failed."""
        now = time.time()
        async with self.db.engine.begin() as conn:
            taken = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == record.id,
                    jobs.c.delivered.is_(False),
                    jobs.c.attempts == record.attempts,
                    jobs.c.updated_at <= now,
                )
                .values(attempts=jobs.c.attempts + 1, updated_at=now + lease)
            )
        return taken.rowcount == 1

    async def late_delivered(self, job_id: str, state: JobStatus, message_id: int) -> None:
        """A late delivery reached the member: the row says so and the kept result goes, in one
        transaction."""
        async with self.db.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(
                    state=state.value,
                    delivered=True,
                    message_id=message_id,
                    updated_at=time.time(),
                )
            )
            await conn.execute(blobs.delete().where(blobs.c.key == result_key(job_id)))

    async def release_delivery(self, job_id: str) -> None:
        """A claimed try failed: the next round of any process may try again."""
        async with self.db.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.delivered.is_(False))
                .values(updated_at=time.time())
            )

    async def history(
        self, user_id: int, guild_id: int | None, *, limit: int = 10
    ) -> list[JobRecord]:
        """The member's last finished pictures in this server, newest first."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(
                        jobs.c.user_id == user_id,
                        jobs.c.guild_id == guild_id,
                        jobs.c.state == JobStatus.DONE.value,
                        jobs.c.message_id.is_not(None),
                    )
                    .order_by(jobs.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [record_of(r) for r in rows]

    async def undelivered(self) -> list[JobRecord]:
        """Jobs that ended but whose final message has not reached the member yet."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(jobs)
                    .where(jobs.c.delivered.is_(False), jobs.c.outcome.is_not(None))
                    .order_by(jobs.c.updated_at)
                )
            ).all()
        return [record_of(r) for r in rows]


def gone(pid: int, seen_at: float) -> bool:
    """Whether the process of this host that wrote `seen_at` with that pid has ended: no process
    has the pid, or this one has it and started after that write (a restarted container's bot
    often gets its predecessor's pid)."""
    if pid == os.getpid():
        return seen_at < STARTED
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def _params_of(text: str) -> tuple[StyleParams | None, str]:
    try:
        return StyleParams.from_dict(json.loads(text)), ""
    except (InvalidParams, ValueError, TypeError) as exc:
        return None, str(exc) or exc.__class__.__name__


def record_of(row: Any) -> JobRecord:
    params, unreadable = _params_of(row.params)
    return JobRecord(
        id=row.id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        application_id=row.application_id,
        token=row.token,
        token_expires_at=row.token_expires_at,
        state=JobStatus(row.state),
        params=params,
        unreadable=unreadable,
        summary=row.summary,
        styles=row.styles,
        outcome=row.outcome,
        delivered=bool(row.delivered),
        attempts=row.attempts,
        message_id=row.message_id,
        created_at=row.created_at,
        instance=row.instance,
        content_owner=row.content_owner,
        result_limit=row.result_limit,
    )
