"""`stylebot run`: the Discord bot on the settings from the environment and .env."""

from __future__ import annotations

import argparse
import asyncio
import logging

import discord

from bot.cli import CliError
from bot.config import ConfigError, load_settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the Discord bot (settings from STYLEBOT_* variables and .env)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from bot.app import run as run_bot
    from bot.executor.pool import WorkerStartError

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None
    discord.utils.setup_logging(level=getattr(logging, args.log_level), root=True)
    try:
        asyncio.run(run_bot(settings))
    except WorkerStartError as exc:
        raise CliError(f"the workers could not start: {exc}", 1) from None
    except discord.LoginFailure:
        raise CliError("Discord refused the token (STYLEBOT_DISCORD_TOKEN): check it in the developer portal", 1) from None
    return 0
