"""`stylebot` / `python -m bot`: the command line."""

from __future__ import annotations

import argparse
import logging
import sys

from bot import cli_bench, cli_bench_executor, cli_run, cli_stylize
from bot.engine.images import ImageError
from bot.engine.params import InvalidParams
from bot.engine.vgg import DeviceError, WeightsError, download_weights


def _download(args: argparse.Namespace) -> int:
    print(download_weights())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylebot", description="Neural style transfer: a Discord bot and a command line.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_run.add_parser(subparsers)
    cli_stylize.add_parser(subparsers)
    cli_bench.add_parser(subparsers)
    cli_bench_executor.add_parser(subparsers)
    p = subparsers.add_parser("download-weights", help="fetch torchvision's ImageNet VGG-19 weights into the torch hub cache")
    p.set_defaults(handler=_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="stylebot: %(levelname)s: %(message)s")
    try:
        return args.handler(args)
    except (cli_stylize.UsageError, InvalidParams, DeviceError) as exc:
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return 2
    except (ImageError, WeightsError) as exc:
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return 1
    except cli_run.SystemExitMessage as exc:
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("stylebot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
