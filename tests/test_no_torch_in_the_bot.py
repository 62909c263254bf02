"""The bot process runs where there is no GPU: importing every bot-side module leaves torch out."""

import subprocess
import sys

BOT_SIDE = [
    "bot.app",
    "bot.config",
    "bot.guild_policy",
    "bot.storage",
    "bot.text",
    "bot.logs",
    "bot.cogs.stylize",
    "bot.cogs.settings",
    "bot.cogs.recovery",
    "bot.cogs.job_message",
    "bot.cogs.views",
    "bot.cogs.checks",
    "bot.cogs.errors",
    "bot.cogs.reply",
    "bot.cogs.downloads",
    "bot.executor.dispatch",
    "bot.executor.pool",
    "bot.executor.protocol",
    "bot.executor.worker",
    "bot.executor.celery.backend",
    "bot.executor.celery.task",  # the main process of `stylebot worker`
    "bot.cli.worker",
    "bot.engine.imaging",
    "bot.engine.params",
    "bot.cli.run",
    "bot.__main__",
]


def test_importing_the_bot_side_does_not_import_torch():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in BOT_SIDE)
        + "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
