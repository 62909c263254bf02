"""The image store under concurrent use: a new job's use of an image and another job's drop of
the same image serialise (two connections on PostgreSQL)."""

import asyncio
import hashlib
import time
import uuid

import pytest
import sqlalchemy as sa

from bot.engine.params import StyleParams
from bot.protocol.messages import JobStatus
from bot.storage import JobRecord, Storage
from bot.storage.db import blobs, job_inputs
from tests.asyncrun import run
from tests.conftest import POSTGRES_URL, postgres_reachable

pytestmark = pytest.mark.xdist_group("postgresql")


def record() -> JobRecord:
    return JobRecord(
        id=uuid.uuid4().hex, user_id=1, guild_id=6262, channel_id=3, application_id=4,
        token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
        params=StyleParams(), summary="s", styles=1,
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


def test_an_image_is_stored_once_and_only_while_a_job_uses_it(database_url):
    """Content-addressed images: two jobs of the same pictures share them; a refused job's
    images go at once, unless another job uses them; expired uses free them."""

    def record(styles=1):
        return JobRecord(
            id=uuid.uuid4().hex, user_id=1, guild_id=6161, channel_id=3, application_id=4,
            token="t", token_expires_at=time.time() + 60, state=JobStatus.QUEUED,
            params=StyleParams(), summary="s", styles=styles,
        )  # fmt: skip

    async def images(storage):
        async with storage.engine.connect() as conn:
            keys = (await conn.execute(sa.select(blobs.c.key))).scalars().all()
        return {k for k in keys if k.startswith("img:")}

    async def scenario():
        storage = await Storage.open(database_url)
        try:
            first, again, refused = record(), record(), record()
            content, style, other = (f"{j.id}".encode() for j in (first, again, refused))
            before = await images(storage)
            await storage.jobs.add(first, [content, style], keep_inputs=60)
            await storage.jobs.add(again, [content, style], keep_inputs=60)  # a button press
            shared = await images(storage)
            await storage.jobs.add(refused, [content, other], keep_inputs=60)
            await storage.jobs.drop_images(refused.id)
            after_refusal = await images(storage)
            async with storage.engine.begin() as conn:
                await conn.execute(
                    job_inputs.update()
                    .where(job_inputs.c.job_id.in_([first.id, again.id]))
                    .values(expires_at=time.time() - 1)
                )
            await storage.blobs.purge_expired()
            ours = {f"img:{hashlib.sha256(d).hexdigest()}" for d in (content, style, other)}
            after_expiry = await images(storage)
            return (
                before,
                shared,
                after_refusal,
                after_expiry,
                ours,
                await storage.jobs.images(again.id),
            )
        finally:
            await storage.close()

    before, shared, after_refusal, after_expiry, ours, gone = run(scenario())
    # counted among this test's own pictures: other tests may write to a shared PostgreSQL
    content_and_style = {key for key in ours if key in shared}
    assert len(content_and_style) == 2 and not ours & before  # two jobs, two images stored
    # the refused job's own image went; the shared ones stay
    assert after_refusal & ours == content_and_style
    assert not ours & after_expiry and gone is None
