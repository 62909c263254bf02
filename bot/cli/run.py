"""`stylebot run`: the Discord bot on the settings from the environment and .env; `stylebot sync`:
send its slash commands to Discord and stop.

Every failure a newcomer can meet at start ends in one line and its own exit code:
2 settings, 3 VGG-19 weights or workers, 4 the database, 5 Discord unreachable, 6 the token refused.
Nothing is written to disk before the settings and the weights are known to be good.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from bot.cli import CliError, add_command, add_log_level

EXIT_SETTINGS, EXIT_WORKERS, EXIT_DATABASE, EXIT_UNREACHABLE, EXIT_TOKEN = 2, 3, 4, 5, 6


ABOUT_RUN = """run the Discord bot (settings from STYLEBOT_* variables and .env)

Runs the Discord bot until SIGTERM or Ctrl-C: starts the workers (or connects to Celery), opens the
database, logs in and syncs the slash commands when they changed. Every failure at start ends in
one line and an exit code: 2 settings, 3 VGG-19 weights or workers, 4 the database, 5 Discord
unreachable, 6 the token refused.
"""


ABOUT_SYNC = """send the slash commands to Discord now (run does it only when they changed)

Logs in, sends the slash commands and context menus to Discord (to STYLEBOT_DEV_GUILD only, when it
is set), and stops. Starts no workers.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "run", ABOUT_RUN, run)
    add_log_level(p)
    p.add_argument(
        "--log-format",
        default=None,
        choices=("text", "json"),
        help="overrides STYLEBOT_LOG_FORMAT: text (colour on a terminal only) or json (one object a line)",
    )
    add_command(
        subparsers, "sync", ABOUT_SYNC, run, log_level=None, log_format=None, sync_only=True
    )


def run(args: argparse.Namespace) -> int:
    import aiohttp
    import discord

    from bot.app import Stopped, sync
    from bot.app import run as run_bot
    from bot.config import ConfigError, env_file_used, load_settings, unknown_variables
    from bot.executor.pool import WorkerStartError
    from bot.logs import LogConfig, configure_logging
    from bot.storage import StorageError, check_database_url, describe_database

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_SETTINGS) from None
    level = args.log_level or settings.log_level
    configure_logging(
        LogConfig(
            level=getattr(logging, level), json=(args.log_format or settings.log_format) == "json"
        )
    )
    for warning in unknown_variables():
        logging.getLogger("stylebot").warning("%s", warning)
    try:
        check_database_url(settings.database_url)
        # both are relative to the folder the bot starts in: say which were used
        log = logging.getLogger("stylebot")
        log.info("settings: %s", env_file_used())
        log.info("%s", describe_database(settings.database_url))
        if getattr(args, "sync_only", False):
            asyncio.run(sync(settings))
            print("stylebot: the slash commands were sent to Discord")
        else:
            asyncio.run(run_bot(settings))
    except Stopped:
        logging.getLogger("stylebot").info("stopped")
        return 0
    except WorkerStartError as exc:
        raise CliError(f"the workers could not start: {exc}", EXIT_WORKERS) from None
    except StorageError as exc:
        raise CliError(str(exc), EXIT_DATABASE) from None
    except discord.LoginFailure:
        raise CliError(
            "Discord refused the token (STYLEBOT_DISCORD_TOKEN): copy it again from the developer "
            "portal's Bot page",
            EXIT_TOKEN,
        ) from None
    except (
        aiohttp.ClientConnectionError,
        discord.GatewayNotFound,
        discord.ConnectionClosed,
        TimeoutError,
    ) as exc:
        raise CliError(
            f"Discord could not be reached ({exc.__class__.__name__}: {exc}); check the network, "
            "a proxy, or STYLEBOT_DISCORD_API_BASE",
            EXIT_UNREACHABLE,
        ) from None
    return 0
