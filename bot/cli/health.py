"""`stylebot health`: ask a running bot's /healthz (the Docker HEALTHCHECK); exit 0 if ready."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

from bot.cli import CliError, UsageError, add_command
from bot.config import health_port_from_environment

ABOUT = """exit 0 if the bot on this machine is ready (needs STYLEBOT_HEALTH_PORT)

Asks the bot's health server on 127.0.0.1 (GET /healthz) and exits 0 when the gateway is connected
and a worker is ready, 1 otherwise with the reason: Docker's HEALTHCHECK.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "health", ABOUT, run)
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="the port of the bot's health server (default: $STYLEBOT_HEALTH_PORT; the bot image "
        "sets 8080). The bot serves none unless that variable is set",
    )
    p.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    port = args.port or health_port_from_environment()
    if port is None:  # as the bot: no health server unless the port is set
        raise UsageError(
            "the bot serves /healthz only where STYLEBOT_HEALTH_PORT is set: set it for the bot "
            "and here, or give --port"
        )
    url = f"http://{args.host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local URL we build)
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        raise CliError(f"not ready: {exc.read().decode() or exc.code}", 1) from None
    except OSError as exc:
        raise CliError(f"no bot answers at {url} ({exc})", 1) from None
    print(json.loads(body))
    return 0
