"""The image store under concurrent use: a new job's use of an image and another job's drop of
the same image serialise (two connections on PostgreSQL)."""

import asyncio
import time
import uuid

import pytest
import sqlalchemy as sa

from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, Storage
from tests.asyncrun import run
from tests.storage.conftest import POSTGRES_URL, postgres_reachable

pytestmark = pytest.mark.xdist_group("postgresql")


def record() -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex, user_id=1, guild_id=6262, channel_id=3, application_id=4,
        token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
        params={}, summary="s", styles=1,
    )  # fmt: skip


async def waits_on_a_lock(storage: Storage, task: asyncio.Task) -> bool:
    """Whether `task` is blocked on a row lock (True), or has finished (False)."""
    while not task.done():
        async with storage.engine.connect() as conn:
            waiting = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
            ).scalar()
        if waiting:
            return True
        await asyncio.sleep(0.02)
    return False


def test_a_use_and_a_drop_of_one_image_serialise_on_postgresql():
    """While a new job's use of an image is uncommitted, a refused job's drop of the same image
    waits for it, and the image stays (it was deleted: the new job's images came back None or in
    the wrong slots)."""
    if not postgres_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")

    async def scenario():
        storage = await Storage.open(POSTGRES_URL)
        try:
            refused, new = record(), record()
            content, style = f"content {new.id}".encode(), f"style {new.id}".encode()
            await storage.jobs.add(refused, [content, style], keep_inputs=60)
            async with storage.engine.begin() as conn:  # the new job's use, not yet committed
                await storage.blobs.use_images(conn, new.id, [content, style], time.time() + 60)
                drop = asyncio.create_task(storage.jobs.drop_images(refused.id))
                blocked = await waits_on_a_lock(storage, drop)
            await drop
            return blocked, await storage.jobs.images(new.id), content, style
        finally:
            await storage.close()

    blocked, images, content, style = run(scenario())
    assert images == [content, style]
    assert blocked  # the drop waited for the use to commit


def test_a_picture_sent_twice_in_one_job_is_stored_once(tmp_path):
    """The same bytes as content and style: one image, used in two slots."""

    async def scenario():
        storage = await Storage.open(f"sqlite+aiosqlite:///{tmp_path / 'stylebot.db'}")
        try:
            job = record()
            await storage.jobs.add(job, [b"same", b"same"], keep_inputs=60)
            return await storage.jobs.images(job.id)
        finally:
            await storage.close()

    assert run(scenario()) == [b"same", b"same"]
