"""`stylebot` / `python -m bot`: the command line."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.cli import (
    CliError,
    Parser,
    add_command,
    bench,
    bench_clip,
    bench_executor,
    bench_tiling,
    evaluate,
    gpu_check,
    health,
    run,
    stylize,
    worker,
)
from bot.extras import MissingExtra, from_import_error
from bot.logs import LogConfig, configure_logging
from bot.threads import quiet_openmp


def _download(args: argparse.Namespace) -> int:
    from bot.engine.vgg import TORCHVISION_URL, download_weights, torchvision_cache_path

    try:
        print(download_weights())
    except OSError as exc:  # URLError, DNS, refused connection, a full disk
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise CliError(
            f"could not download the VGG-19 weights ({reason}). Run this where there is network, or "
            f"copy {TORCHVISION_URL.rsplit('/', 1)[-1]} to {torchvision_cache_path()}. The bundled "
            "original VGG-19 needs no download: leave STYLEBOT_VGG19_WEIGHTS unset",
            3,
        ) from None
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stylebot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


ABOUT_DOWNLOAD = """fetch torchvision's ImageNet VGG-19 weights into the torch hub cache (optional)

Not needed: the engine extra brings the original VGG-19 (Caffe's), the default. This downloads
torchvision's ImageNet VGG-19 weights (548 MB, checked against their hash) into the torch hub cache
($TORCH_HOME/hub/checkpoints), unless they are there already, and prints their path; then
`--weights torchvision` (or STYLEBOT_VGG19_WEIGHTS=torchvision) uses them. Needs the network.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stylebot", description="Neural style transfer: a Discord bot and a command line."
    )
    parser.add_argument("--version", action="version", version=f"stylebot {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (
        run,
        worker,
        stylize,
        evaluate,
        bench,
        bench_executor,
        bench_tiling,
        bench_clip,
        gpu_check,
        health,
    ):
        command.add_parser(subparsers)
    add_command(subparsers, "download-weights", ABOUT_DOWNLOAD, _download)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_openmp()  # before any command imports torch (bot/threads.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    configure_logging(LogConfig(level=logging.WARNING))  # `run` sets its own level and format
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return exc.code
    except MissingExtra as exc:
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return 3
    except ModuleNotFoundError as exc:
        missing = from_import_error(exc, f"stylebot {args.command}")
        if missing is None:
            raise
        print(f"stylebot: error: {missing}", file=sys.stderr)
        return 3
    except Exception as exc:
        code = _engine_error_code(exc)
        if code is None:
            raise
        print(f"stylebot: error: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("stylebot: interrupted", file=sys.stderr)
        return 130


def _engine_error_code(exc: Exception) -> int | None:
    """Exit code for the engine's own errors, whose messages are written for a person. Read from
    the modules already loaded: an error of a module that was never imported cannot be this one,
    and importing the engine's to find out would load torch (5 s) for a mistyped option."""

    def raised_by(module: str, name: str) -> bool:
        loaded = sys.modules.get(module)
        return loaded is not None and isinstance(exc, getattr(loaded, name))

    if (
        raised_by("bot.engine.params", "InvalidParams")
        or raised_by("bot.engine.devices", "DeviceError")
        or raised_by("bot.engine.progress", "NonFiniteLoss")  # its message names what to lower
    ):
        return 2
    if raised_by("bot.engine.weights", "WeightsError"):  # as `run` and `worker` exit for them
        return 3
    if raised_by("bot.media.imaging", "ImageError"):  # a picture refused: the input, as any other
        return 2
    return None


if __name__ == "__main__":
    sys.exit(main())
