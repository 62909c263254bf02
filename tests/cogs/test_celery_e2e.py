"""The bot on Celery workers, killed with kill -9 mid-job: the next bot still delivers the result."""

import asyncio

import pytest

from tests.cogs.harness import BotHarness, stylize_pictures, text_of
from tests.cogs.test_recovery_e2e import bot_env, kill_tree, run
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
