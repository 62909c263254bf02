"""The options several commands share, declared once: the model's weights, the device and the
precision (their choices and defaults live in bot/engine/params.py)."""

from __future__ import annotations

import argparse

from bot.config import weights_from_environment
from bot.engine.params import ORIGINAL_WEIGHTS as ORIGINAL
from bot.engine.params import PRECISIONS, WEIGHTS_ENV

DEVICES = "auto, cpu, cuda, cuda:N or mps"
WEIGHTS_HELP = (
    "VGG-19 weights: original (Caffe's VGG-19, bundled), torchvision (its ImageNet weights, after "
    "`stylebot download-weights`), a state-dict FILE in torchvision's convention, or caffe:FILE"
)


def precision_for(device, precision: str, model) -> tuple[str, str]:
    """--precision resolved on this device (auto on a CPU: measured once, kept on disk), and why."""
    from bot.config import precision_cache_file
    from bot.engine.devices import resolve_precision

    return resolve_precision(device, precision, model, precision_cache_file())


def weights_of(args: argparse.Namespace) -> str:
    """--weights, else $STYLEBOT_VGG19_WEIGHTS, else the bundled original VGG-19."""
    return args.weights or weights_from_environment() or ORIGINAL


PRECISION_HELP = (
    "auto: TF32 on CUDA; on a CPU bf16 where a short measurement on this machine finds it clearly "
    "faster (kept on disk), else fp32; bf16 runs VGG-19 under bf16 autocast"
)


def add_model_options(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    precision: str | None = "auto",
    several_precisions: bool = False,
    device: bool = True,
) -> None:
    """--weights (read with weights_of: $STYLEBOT_VGG19_WEIGHTS, then the bundled original),
    --device, and --precision (left out for None; `several_precisions`: a comma-separated list,
    each one timed)."""
    group.add_argument(
        "--weights",
        default=None,
        help=f"{WEIGHTS_HELP} (default: ${WEIGHTS_ENV}, else the bundled original VGG-19; random: "
        "random weights, for tests)",
    )
    if device:  # (a command with devices of its own declares them)
        group.add_argument("--device", default="auto", help=f"{DEVICES} (default: %(default)s)")
    if precision is None:
        return
    if several_precisions:
        group.add_argument(
            "--precision",
            default=precision,
            help=f"comma-separated, each one of {', '.join(PRECISIONS)} (default: %(default)s)",
        )
    else:
        group.add_argument(
            "--precision",
            choices=PRECISIONS,
            default=precision,
            help=f"{PRECISION_HELP} (default: %(default)s)",
        )
