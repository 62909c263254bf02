"""The bot on Celery workers, killed with kill -9 mid-job: the next bot still delivers the result."""

import asyncio

import pytest

from tests.cogs.harness import BotHarness, stylize_pictures, text_of
from tests.cogs.harness import run_with_fake as run
from tests.cogs.processes import bot_env, kill_tree
from tests.executor.celery_helpers import REDIS_URL, celery_config, reachable, running_workers

pytestmark = pytest.mark.skipif(not reachable(REDIS_URL), reason="needs Redis on 127.0.0.1:6379")


def test_a_bot_killed_mid_job_delivers_the_result_after_its_restart(database_url, tmp_path):
    import subprocess
    import sys

    config = celery_config()
    celery_settings = {
        "STYLEBOT_EXECUTOR": "celery",
        "STYLEBOT_REDIS_URL": REDIS_URL,
        "STYLEBOT_CELERY_QUEUE": config.queue,
    }

    async def scenario(fake):
        log = open(tmp_path / "bot.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"],
            env={**bot_env(fake, database_url), **celery_settings},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            await asyncio.wait_for(fake.identified.wait(), 90)
            await asyncio.sleep(0.5)
            token = await stylize_pictures(fake, steps=300, size=64)
            await fake.wait_for(lambda f: any("/300 " in text_of(e) for e in f.edits(token)))
        finally:
            kill_tree(process)  # the bot dies; the worker goes on painting
            log.close()
        async with BotHarness(
            fake,
            database_url,
            instance_timeout=1.0,
            executor="celery",
            redis_url=REDIS_URL,
            celery_queue=config.queue,
        ):
            done = await fake.wait_for(
                lambda f: [e for e in f.edits(token) if "Done in" in text_of(e)], timeout=120
            )
        return fake.edits(token), done[-1]

    with running_workers(config, ["w1"], tmp_path):
        edits, done = run(scenario)
    assert not any("was lost" in text_of(e) for e in edits)
    assert "300 steps" in text_of(done) and done.files


def test_a_late_delivery_leaves_the_result_in_neither_store(database_url, tmp_path):
    """Discord refuses the ending for a while; the retrier delivers it; then the result is gone
    from Redis and from the database (both kept it 24 h)."""
    import redis
    import sqlalchemy as sa

    from bot.storage import result_key
    from bot.storage.db import blobs, jobs

    config = celery_config()

    async def scenario(fake):
        async with BotHarness(
            fake,
            database_url,
            executor="celery",
            redis_url=REDIS_URL,
            celery_queue=config.queue,
            delivery_retry_interval=0.5,
        ) as harness:
            token = await stylize_pictures(fake, steps=40, size=64)
            await fake.wait_for(lambda f: any("/40" in text_of(e) for e in f.edits(token)))
            fake.refusing = True
            await fake.wait_for(
                lambda f: [m for m in f.channel_messages() if "Done in" in text_of(m)]
            )
            async with harness.storage.engine.connect() as conn:
                job_id = (
                    await conn.execute(sa.select(jobs.c.id).where(jobs.c.token == token))
                ).scalar_one()
            # the refused posts are seen before the bot writes the result down: wait for it
            for _ in range(200):
                kept = await harness.storage.blobs.get([result_key(job_id)])
                if kept:
                    break
                await asyncio.sleep(0.05)
            fake.refusing = False
            await fake.wait_for(
                lambda f: [e for e in f.edits(token) if "Done in" in text_of(e) and e.files]
            )
            while not (await harness.storage.jobs.get(job_id)).delivered:
                await asyncio.sleep(0.05)
            async with harness.storage.engine.connect() as conn:
                left = (
                    (await conn.execute(sa.select(blobs.c.key).where(blobs.c.key.like("job:%"))))
                    .scalars()
                    .all()
                )
            client = redis.Redis.from_url(REDIS_URL)
            for _ in range(100):  # the bot drops them right after it records the delivery
                in_redis = client.exists(f"stylebot:result:{job_id}", f"stylebot:job:{job_id}")
                if not in_redis:
                    break
                await asyncio.sleep(0.05)
            return kept, job_id, left, in_redis

    with running_workers(config, ["w1"], tmp_path):
        kept, job_id, left, in_redis = run(scenario)
    assert kept  # it waited in the database while Discord refused it
    assert result_key(job_id) not in left and in_redis == 0
