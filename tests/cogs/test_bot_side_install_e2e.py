"""A bot host without torch (the base install plus Celery): `stylebot run` as a person starts it,
against the fake Discord and a `stylebot worker` on real Redis. While no worker is online the
member is told so; the job then ends with the picture; SIGTERM stops the bot with one line."""

import asyncio
import signal
import subprocess
import sys

import pytest

from tests.cogs.harness import run_with_fake, stylize_pictures, text_of
from tests.cogs.processes import bot_env
from tests.executor.celery_helpers import REDIS_URL, Worker, celery_config, reachable

pytestmark = pytest.mark.skipif(not reachable(REDIS_URL), reason="needs Redis on 127.0.0.1:6379")

# Makes `import torch` fail in the bot's process (and in anything it spawns), as on a host where
# torch is not installed: None in sys.modules is how Python marks a module as not importable.
BLOCK_TORCH = "import sys\nsys.modules['torch'] = None\n"


def test_the_bot_side_runs_without_torch(database_url, tmp_path):
    (tmp_path / "no-torch").mkdir()
    (tmp_path / "no-torch" / "sitecustomize.py").write_text(BLOCK_TORCH)
    config = celery_config()
    log_path = tmp_path / "bot.log"
    workers: list[Worker] = []

    async def scenario(fake):
        env = bot_env(fake, database_url)
        env.update(
            STYLEBOT_EXECUTOR="celery",
            STYLEBOT_REDIS_URL=REDIS_URL,
            STYLEBOT_CELERY_QUEUE=config.queue,
            PYTHONPATH=f"{tmp_path / 'no-torch'}:{env.get('PYTHONPATH', '')}".rstrip(":"),
        )
        with open(log_path, "wb") as log:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            await asyncio.wait_for(fake.identified.wait(), 90)
            token = await stylize_pictures(fake, steps=3, size=64)
            await fake.wait_for(
                lambda f: any("No worker is online" in text_of(e) for e in f.edits(token))
            )
            workers.append(Worker(config, "w1", tmp_path))
            done = await fake.wait_for(
                lambda f: [e for e in f.edits(token) if "Done in" in text_of(e)], timeout=120
            )
            bot.send_signal(signal.SIGTERM)
            code = await asyncio.get_running_loop().run_in_executor(None, bot.wait, 60)
        finally:
            if bot.poll() is None:
                bot.kill()
        return done[-1], code

    try:
        done, code = run_with_fake(scenario)
    finally:
        for worker in workers:
            worker.stop()
    log = log_path.read_text()
    assert done.files, log
    assert code == 0, log
    assert "SIGTERM: stopping" in log and log.rstrip().endswith("stopped"), log
    assert "Traceback" not in log, log
