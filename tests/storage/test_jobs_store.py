"""The jobs store's promises about time: a late delivery's claim is a lease (no second process
delivers while a slow try runs), no token outlives its 15 minutes, a refused job's row goes after
a short audit window."""

import time
import uuid

import pytest
import sqlalchemy as sa

from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, Storage
from bot.storage.db import Database, jobs
from tests.asyncrun import run

pytestmark = pytest.mark.xdist_group("postgresql")


def record(*, token_for: float = 900) -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex, user_id=1, guild_id=6363, channel_id=3, application_id=4,
        token="secret-token", token_expires_at=time.time() + token_for, state=JobStatus.QUEUED,
        params={}, summary="s", styles=1,
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
