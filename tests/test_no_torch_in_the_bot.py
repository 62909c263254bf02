"""The bot process runs where there is no GPU: importing every bot-side module leaves torch out.

The bot side is every module of `bot` but the engine and the worker package, whose modules import
torch at the top (and the CLI's progress bar for engine runs). Pictures as bytes (headers,
decoding, encoding) are the pure package `bot.media`, which both sides use; of the engine, the bot
imports only its vocabulary, `bot.engine.params` (StyleParams, the limits, the enums). A local worker is started by its entry's name (bot/protocol/entry.py),
so the bot never imports bot/worker/."""

import importlib.util
import pathlib
import pkgutil
import subprocess
import sys

import bot

# and the terminal progress bar of `stylebot stylize`, which draws the engine's Progress
TORCH_SIDE = ("bot.engine.", "bot.worker.", "bot.cli.progress")
BOT_IMPORTS_FROM_THE_TORCH_SIDE = ["bot.engine.params"]
PURE_PACKAGE = "bot.media."


def bot_side_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(bot.__path__, "bot.")]
    return [n for n in names if not n.startswith(TORCH_SIDE)] + BOT_IMPORTS_FROM_THE_TORCH_SIDE


def test_the_bot_side_is_most_of_the_package():
    modules = bot_side_modules()
    for name in ("bot.app", "bot.cogs.stylize", "bot.jobs.launcher", "bot.executor.pool"):
        assert name in modules
    assert "bot.worker.runner" not in modules and "bot.worker.process" not in modules
    media = [n for n in modules if n.startswith(PURE_PACKAGE)]
    assert {"bot.media.imaging", "bot.media.clips", "bot.media.encoding"} <= set(media)


def test_the_engine_holds_no_pure_media_modules():
    """Headers, decoding and encoding live in bot.media: every engine module imports torch, but
    its vocabulary (params), the memory plan (arithmetic only the torch side reads) and transfer
    (torch through painting)."""
    engine = [
        m.name
        for m in pkgutil.walk_packages(bot.__path__, "bot.")
        if m.name.startswith("bot.engine.")
    ]
    pure = {"bot.engine.params", "bot.engine.memory", "bot.engine.transfer"}
    for name in set(engine) - pure:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        text = pathlib.Path(spec.origin).read_text(encoding="utf-8")
        assert "import torch" in text or "from torch" in text, (
            f"{name} is pure: does it belong in bot.media?"
        )


def test_importing_the_bot_side_does_not_import_torch():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in bot_side_modules())
        + "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
