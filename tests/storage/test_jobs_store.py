"""The jobs store's promises about time: a late delivery's claim is a lease (no second process
delivers while a slow try runs), no token outlives its 15 minutes, a refused job's row goes after
a short audit window."""

import asyncio
import time
import uuid

import pytest
import sqlalchemy as sa

from bot.engine.params import InvalidParams, StyleParams
from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, Storage
from bot.storage.db import Database, job_inputs, jobs
from tests.asyncrun import run

pytestmark = pytest.mark.xdist_group("postgresql")


def record(*, token_for: float = 900) -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex, user_id=1, guild_id=6363, channel_id=3, application_id=4,
        token="secret-token", token_expires_at=time.time() + token_for, state=JobStatus.QUEUED,
        params=StyleParams(), summary="s", styles=1,
    )  # fmt: skip


async def row(storage: Storage, job_id: str):
    async with storage.engine.connect() as conn:
        return (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).one_or_none()


def test_a_slow_late_delivery_is_not_claimed_again_by_another_process(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        other = Storage(Database(storage.engine))  # a second bot process
        try:
            job = record()
            await storage.jobs.add(job, [b"c", b"s"], keep_inputs=60)
            await storage.jobs.set_state(job.id, JobStatus.DONE, outcome="done", delivered=False)
            found = await storage.jobs.get(job.id)
            assert await storage.jobs.claim_delivery(found, lease=60)
            # the try is slow: the other process's next round sees the new count, and waits
            again = await other.jobs.get(job.id)
            slow_claim = await other.jobs.claim_delivery(again, lease=60)
            await storage.jobs.release_delivery(job.id)  # that try failed
            retry = await other.jobs.claim_delivery(await other.jobs.get(job.id), lease=60)
            return slow_claim, retry
        finally:
            await storage.close()

    slow_claim, retry = run(scenario())
    assert not slow_claim  # it was a second delivery of one ending
    assert retry  # once the first try has failed, anyone may try again


def test_tokens_are_blanked_when_they_expire_and_refused_rows_go(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            live, expired, refused = record(), record(token_for=-1), record()
            for job in (live, expired, refused):
                await storage.jobs.add(job, [b"c" + job.id.encode(), b"s"], keep_inputs=60)
            await storage.jobs.refused(refused.id, "Not now: busy.")
            right_after = await row(storage, refused.id)
            await storage.jobs.purge(refused_after=3600)
            kept = await row(storage, refused.id)
            await storage.jobs.purge(refused_after=-1)
            return (
                right_after,
                kept,
                await row(storage, refused.id),
                await row(storage, live.id),
                await row(storage, expired.id),
                await storage.jobs.images(refused.id),
            )
        finally:
            await storage.close()

    right_after, kept, gone, live, expired, images = run(scenario())
    assert right_after.token == "" and right_after.state == "refused" and images is None
    assert kept is not None and gone is None  # kept for the audit window, then gone
    assert live.token == "secret-token" and expired.token == ""


def test_jobs_and_their_inputs(database_url):
    async def scenario():
        storage = await Storage.open(database_url)
        try:
            record = JobRecord(
                id="a" * 32,
                user_id=5,
                guild_id=6,
                channel_id=7,
                application_id=8,
                token="tok",
                token_expires_at=0.0,
                state=JobStatus.QUEUED,
                params=StyleParams(size=64),
                summary="s",
                styles=1,
            )
            async with storage.engine.begin() as conn:  # a clean slate on a shared PostgreSQL
                await conn.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": record.id})
                await conn.execute(
                    sa.text("DELETE FROM job_inputs WHERE job_id = :id"), {"id": record.id}
                )
                await conn.execute(
                    sa.text("DELETE FROM blobs WHERE key LIKE :k"), {"k": f"job:{record.id}:%"}
                )
            await storage.jobs.add(record, [b"content", b"style"], keep_inputs=60)
            await storage.jobs.heartbeat()
            assert record.id not in [
                j.id for j in await storage.jobs.orphaned(silent_for=60)
            ]  # its own
            successor = Storage(Database(storage.engine))  # a new bot process on the same database
            assert record.id in [
                j.id for j in await successor.jobs.orphaned(silent_for=-1)
            ]  # the first fell silent
            assert record.id not in [
                j.id for j in await successor.jobs.orphaned(silent_for=60)
            ]  # still alive
            assert await storage.jobs.images(record.id) == [b"content", b"style"]
            await storage.jobs.set_state(record.id, JobStatus.RUNNING)
            await storage.jobs.set_state(
                record.id, JobStatus.DONE, outcome="done!", delivered=False
            )
            assert record.id not in [j.id for j in await successor.jobs.orphaned(silent_for=-1)]
            assert record.id in [j.id for j in await storage.jobs.undelivered()]
            found = next(j for j in await storage.jobs.undelivered() if j.id == record.id)
            assert await storage.jobs.claim_delivery(
                found, lease=60
            )  # one try is counted per claim
            assert not await storage.jobs.claim_delivery(
                found, lease=60
            )  # another process: too late
            stored = await storage.jobs.get(record.id)
            assert (
                stored.state is JobStatus.DONE
                and stored.outcome == "done!"
                and stored.attempts == 1
            )
            assert not stored.token_alive and stored.params == StyleParams(size=64)
            await storage.jobs.set_state(record.id, JobStatus.DONE, delivered=True)
            assert record.id not in [j.id for j in await storage.jobs.undelivered()]
            async with storage.engine.begin() as conn:  # its images' time is over
                await conn.execute(
                    job_inputs.update()
                    .where(job_inputs.c.job_id == record.id)
                    .values(expires_at=time.time() - 1)
                )
            assert await storage.jobs.images(record.id) is None
            assert await storage.blobs.purge_expired() >= 1
        finally:
            await storage.close()

    run(scenario())


def test_two_bot_processes_adopt_an_orphan_and_deliver_an_ending_once(database_url):
    """Two processes (each with its own connections) whose recovery rounds meet: one wins."""

    async def scenario():
        first = await Storage.open(database_url)
        record = JobRecord(
            id=uuid.uuid4().hex, user_id=1, guild_id=2, channel_id=3, application_id=4,
            token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
            params=StyleParams(), summary="s", styles=1,
        )  # fmt: skip
        await first.jobs.add(record, [b"c", b"s"], keep_inputs=60)
        await first.jobs.heartbeat()
        await first.close()  # its process died
        a, b = await Storage.open(database_url), await Storage.open(database_url)
        try:
            orphans = [
                next(j for j in await s.jobs.orphaned(silent_for=-1) if j.id == record.id)
                for s in (a, b)
            ]
            adopted = await asyncio.gather(a.jobs.adopt(orphans[0]), b.jobs.adopt(orphans[1]))
            await a.jobs.set_state(record.id, JobStatus.DONE, outcome="done", delivered=False)
            found = [
                next(j for j in await s.jobs.undelivered() if j.id == record.id) for s in (a, b)
            ]
            claimed = await asyncio.gather(
                a.jobs.claim_delivery(found[0], lease=60), b.jobs.claim_delivery(found[1], lease=60)
            )
            return adopted, claimed
        finally:
            await a.close()
            await b.close()

    adopted, claimed = run(scenario())
    assert sorted(adopted) == [False, True] and sorted(claimed) == [False, True]


def test_parameters_another_version_wrote_are_read_as_unreadable(database_url):
    """A row whose parameters this version cannot parse (a newer version's field) still reads:
    its `params` is None and `style_params()` says why; the others are unaffected."""

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            record = JobRecord(
                id=uuid.uuid4().hex, user_id=5, guild_id=6, channel_id=7, application_id=8, token="t2",
                token_expires_at=0.0, state=JobStatus.QUEUED, params=StyleParams(size=96),
                summary="s", styles=1,
            )  # fmt: skip
            images = [f"content {record.id}".encode(), f"style {record.id}".encode()]
            await storage.jobs.add(record, images, keep_inputs=60)  # its own: others purge theirs
            assert (await storage.jobs.get(record.id)).params == StyleParams(size=96)
            async with storage.engine.begin() as conn:
                await conn.execute(
                    sa.text("UPDATE jobs SET params = :p WHERE id = :id"),
                    {"p": '{"size": 96, "brush_texture": "oil"}', "id": record.id},
                )
            read = await storage.jobs.get(record.id)
            assert read.params is None
            with pytest.raises(InvalidParams, match="brush_texture"):
                read.style_params()
        finally:
            await storage.close()

    run(scenario())
