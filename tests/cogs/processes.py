"""The bot as a person starts it, `stylebot run` in a process of its own against the fake
Discord, and how tests end such a process as a crash would (kill -9 of it and its workers)."""

import os
import signal
import subprocess
import sys

import psutil

from tests.cogs.fake_discord import FakeDiscord


def bot_env(fake: FakeDiscord, database_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "STYLEBOT_DISCORD_TOKEN": "fake-token-for-tests",
        "STYLEBOT_DATABASE_URL": database_url,
        "STYLEBOT_VGG19_WEIGHTS": "random",
        "STYLEBOT_DISCORD_API_BASE": fake.api_base,
        "STYLEBOT_DISCORD_GATEWAY_URL": fake.gateway_url,
        "STYLEBOT_DEVICES": "cpu",
        "STYLEBOT_ATTACHMENT_HOSTS": "127.0.0.1",
        "STYLEBOT_PROGRESS_EDIT_INTERVAL": "0.2",
    }
    return env


def bot_process(fake: FakeDiscord, database_url: str) -> subprocess.Popen:
    """`stylebot run` as a person starts it, against the fake Discord."""
    env = bot_env(fake, database_url)
    log = open(os.path.join(os.path.dirname(database_url.split("///")[-1]), "bot.log"), "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def kill_tree(process: subprocess.Popen) -> None:
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    for child in children:  # the workers notice their parent is gone; do not wait for that here
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
