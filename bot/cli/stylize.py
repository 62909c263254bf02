"""`stylebot stylize`: the engine from the command line, no Discord. A still content is painted
into a still; a moving picture (a GIF, APNG, animated WebP or a video clip) has every frame
painted, kept steady along the content's motion, and is written as a GIF, WebP, APNG or MP4 with
its timing and looping."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.cli import UsageError, add_command
from bot.cli.common import add_model_options, precision_for, weights_of
from bot.engine.params import (
    AUTO_PYRAMID_COARSEST,
    AUTO_PYRAMID_FROM,
    COLOR_MODES,
    CONVERGENCE_WINDOW,
    DEFAULT_LR,
    INITS,
    OPTIMIZERS,
    POOLINGS,
    ImageLimits,
    StyleParams,
    check_pictures,
    describe_schedule,
    draw_seed,
    fit_size,
)
from bot.media import clips, encoding, imaging

log = logging.getLogger(__name__)
DEFAULTS = StyleParams()
OUTPUT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
CLIP_OUTPUTS = {".gif": "gif", ".webp": "webp", ".png": "png", ".apng": "png", ".mp4": "mp4"}


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


ABOUT = """paint CONTENT in the style of STYLE (one or more style images)

Neural style transfer (Gatys et al.) on VGG-19 features.
"""


# a long function (over 60 lines): one declaration per option, read as the command's manual
def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "stylize", ABOUT, run)
    p.add_argument(
        "content",
        help=f"content image ({ImageLimits().formats_text()}), or a moving picture (animated GIF, "
        "APNG or WebP; MP4, WebM or MOV): then every frame is painted",
    )
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s); several are blended")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .png, .jpg or .webp; for a moving picture .gif, .webp, .png (APNG) or .mp4",
    )
    g = p.add_argument_group("size and length")
    g.add_argument(
        "--size",
        type=int,
        default=DEFAULTS.size,
        help="longest side of the output in pixels (aspect ratio kept)",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=DEFAULTS.steps,
        help="optimiser steps at the final size; 0: the size's schedule (512 px: 80 after a "
        "coarser level of 80, about 100 full-size steps' work; other sizes: 300) "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--coarse-steps",
        type=int,
        default=DEFAULTS.coarse_steps,
        help="steps of each coarser pyramid level; 0: as many as --steps (default: %(default)s)",
    )
    g.add_argument(
        "--pyramid",
        type=int,
        default=DEFAULTS.pyramid_levels,
        dest="pyramid_levels",
        help="coarse-to-fine levels, each half the size of the next; 0: automatic (1 below "
        f"{AUTO_PYRAMID_FROM} px, from it down to about {AUTO_PYRAMID_COARSEST} px)",
    )
    g = p.add_argument_group("weights of the costs")
    g.add_argument(
        "--strength",
        type=float,
        default=DEFAULTS.strength,
        help="style strength: 0 keeps the content, 1 is the default balance, 2 twice the style",
    )
    g.add_argument(
        "--content-weight",
        "--alpha",
        type=float,
        default=None,
        dest="content_weight",
        help="raw alpha of J = alpha J_content + beta J_style (with --style-weight; replaces --strength)",
    )
    g.add_argument(
        "--style-weight",
        "--beta",
        type=float,
        default=None,
        dest="style_weight",
        help="raw beta (with --content-weight)",
    )
    g.add_argument(
        "--style-layers",
        type=_names,
        default=DEFAULTS.style_layers,
        help="comma-separated VGG-19 layers for style (relu1_1 ... relu5_4, conv*, pool*)",
    )
    g.add_argument(
        "--style-layer-weights",
        type=_floats,
        default=None,
        help="comma-separated lambda per style layer (default: equal, summing to 1)",
    )
    g.add_argument(
        "--content-layers",
        type=_names,
        default=DEFAULTS.content_layers,
        help="comma-separated content layers",
    )
    g.add_argument(
        "--tv-weight",
        type=float,
        default=DEFAULTS.tv_weight,
        help="total-variation smoothing weight",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    g.add_argument(
        "--lr",
        type=float,
        default=None,
        dest="learning_rate",
        help=f"learning rate (default: {', '.join(f'{k} {v}' for k, v in DEFAULT_LR.items())})",
    )
    g.add_argument(
        "--init",
        choices=INITS,
        default=DEFAULTS.init,
        help="starting image; recolored: the content in the style's colours (default: %(default)s)",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULTS.tolerance,
        help="a pyramid level stops early once J fell by less than this fraction over its last "
        f"{CONVERGENCE_WINDOW} steps; 0: never (default: %(default)s)",
    )
    g.add_argument(
        "--noise-ratio",
        type=float,
        default=DEFAULTS.noise_ratio,
        help="share of noise for --init content+noise",
    )
    g.add_argument(
        "--start-noise",
        type=float,
        default=DEFAULTS.start_noise,
        help="for --init content and recolored: the amplitude of the smooth noise, drawn from the "
        "seed, added to the start (what another seed changes); 0: every seed paints the same",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the seed that varies the picture (the start's noise): the same seed, settings and "
        "pictures paint the same picture again (default: a new one, drawn here and printed)",
    )
    g = p.add_argument_group("style images and colour")
    g.add_argument(
        "--style-blend",
        type=_floats,
        default=None,
        help="comma-separated weight per style image (default: equal)",
    )
    g.add_argument(
        "--style-scale",
        type=float,
        default=DEFAULTS.style_scale,
        help="style image size relative to the output",
    )
    g.add_argument(
        "--preserve-colors",
        choices=COLOR_MODES,
        default=DEFAULTS.preserve_colors,
        help="luminance: transfer brightness only and keep the content's colours; "
        "match: recolour the style images to the content's palette first",
    )
    g.add_argument("--pooling", choices=POOLINGS, default=DEFAULTS.pooling, help="VGG-19 pooling")
    g = p.add_argument_group("model and device")
    add_model_options(g)
    g.add_argument(
        "--memory-limit",
        type=float,
        default=None,
        metavar="GB",
        help="the most memory the run may use (default: on CUDA 80%% of the free memory, elsewhere "
        "no limit); a picture beyond it runs with a shorter L-BFGS history, then in tiles",
    )
    g.add_argument(
        "--tile-size",
        type=int,
        default=None,
        metavar="PX",
        help="cut the picture into tiles of about PX pixels a side (default: only when it does not "
        "fit the memory limit); the result is the same, each step takes longer",
    )
    g = p.add_argument_group("output")
    g.add_argument(
        "--save-every",
        type=int,
        default=0,
        help="also write the image every K steps (OUT-0050.png, ...)",
    )
    g.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality")
    g.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (the seed is still printed)"
    )
    _add_clip_options(p)


def _add_clip_options(p: argparse.ArgumentParser) -> None:
    defaults = DEFAULTS
    g = p.add_argument_group(
        "moving pictures (a GIF, APNG, animated WebP, MP4, WebM or MOV as the content)"
    )
    g.add_argument(
        "--temporal-weight",
        type=float,
        default=defaults.temporal_weight,
        help="how strongly each frame keeps to the one before it, moved along the content's "
        "motion; 0 paints every frame alone (it flickers)",
    )
    g.add_argument(
        "--clip-frames",
        type=int,
        default=defaults.clip_frames,
        help="at most this many frames are painted: above it the frame rate is lowered",
    )
    g.add_argument(
        "--clip-seconds",
        type=float,
        default=defaults.clip_seconds,
        help="a longer clip is cut to its first this many seconds",
    )
    g.add_argument(
        "--clip-size",
        type=int,
        default=defaults.clip_size,
        help="a moving picture is painted at most this many pixels on its longest side (--size "
        "above it is lowered): a clip costs its frames in time and memory",
    )
    g.add_argument(
        "--first-frame",
        action="store_true",
        help="paint only the first frame of a moving picture, as a still",
    )


def _params(args: argparse.Namespace) -> StyleParams:
    """Every option whose name is a StyleParams field, plus --save-every as preview_every; the
    seed drawn here when none is given (the job settled before it runs, as the bot does)."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(StyleParams)
        if hasattr(args, f.name)
    }
    if given.get("seed") is None:
        given["seed"] = draw_seed()
    return StyleParams(**given, preview_every=args.save_every).validate()


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _read_image(path: str, limits: ImageLimits, what: str):
    return imaging.decode(_read_bytes(path, what), limits, name=f"{what} {path}")


def run(args: argparse.Namespace) -> int:
    """Paint the content (a still, or every frame of a moving picture) and write it. The options
    and the pictures are checked before torch loads (5 s): a mistake is said at once."""
    output = Path(args.output)
    params = _params(args)
    limits = ImageLimits()
    data = _read_bytes(args.content, "content image")
    fmt = _check_output(args, output, not args.first_frame and clips.is_moving(data))
    params, content, notes = clips.read_content(
        data, params, limits, where=f" {args.content}", first_frame=args.first_frame
    )
    styles = [_read_image(s, limits, "style image") for s in args.styles]
    # fails early on a wrong number of blend weights, or content too thin for the layers
    check_pictures(
        params,
        *content.frames[0].size,
        [s.size for s in styles],
        f"content image {args.content}",
        [f"style image {name}" for name in args.styles],
    )
    from bot.engine.devices import parse_device

    device = parse_device(args.device)
    width, height = fit_size(*content.frames[0].size, params.size)
    plan = _plan(args, params, device, width, height, len(content.frames))
    result = _paint(args, params, content, styles, device, plan, notes, output, fmt)
    if isinstance(result, int):  # stopped: its exit code
        return result
    data, _, _ = encoding.encode_result(result.clip, fmt=fmt, quality=args.quality)
    write_atomically(output, data)
    if args.quiet:  # one line even when quiet: what was written, and the seed to repeat it
        print(f"stylebot: wrote {output}, seed {result.seed}", file=sys.stderr)
        return 0
    frames = len(result.frames)
    what = (
        f"{frames} frames, {width}x{height}) in {result.elapsed:.1f} s "
        f"({result.elapsed / frames:.2f} s a frame), seed {result.seed}, flicker {result.flicker:.4f} "
        "(mean change of a pixel between neighbouring frames along the motion, 0-1)"
        if content.moving
        else f"{width}x{height}) in {result.elapsed:.1f} s, seed {result.seed}"
    )
    print(
        f"stylebot: wrote {output} ({what}"
        + (f", converged at step {result.converged_at}" if result.converged_at else ""),
        file=sys.stderr,
    )
    return 0


def _paint(
    args: argparse.Namespace,
    params: StyleParams,
    content: clips.Clip,
    styles: list,
    device,
    plan,
    notes: tuple[str, ...],
    output: Path,
    fmt: str,
):
    """The Painting run with a progress bar (and --save-every's pictures); the exit code if
    Ctrl-C or SIGTERM stopped it."""
    from bot.cli.progress import ProgressBar
    from bot.engine.devices import policy_for
    from bot.engine.painting import Painting
    from bot.engine.progress import Cancelled, Progress
    from bot.engine.vgg import load_vgg19
    from bot.threads import apply_budget, default_budget

    apply_budget(default_budget())  # torch, OpenCV, codecs: the cores this process may use
    model = load_vgg19(weights_of(args), pooling=params.pooling, device=device)
    precision, why = precision_for(device, args.precision, model)
    bar = ProgressBar(enabled=not args.quiet)
    if not args.quiet:
        width, height = fit_size(*content.frames[0].size, params.size)
        what = f"{width}x{height}"
        if content.moving:
            what = f"{len(content.frames)} frames of {what}, {content.seconds:.1f} s"
        changes = f" ({'; '.join(notes)})" if notes else ""
        print(
            f"stylebot: {what}{changes}, {describe_schedule(params)} on {device} in {precision} "
            f"({why}); seed {params.seed}; "
            f"weights {model.source.label}{_describe(plan, params, len(content.frames))}",
            file=sys.stderr,
        )
    still_fmt = fmt if not content.moving else None

    def on_progress(progress: Progress) -> None:
        bar.update(progress)
        if progress.preview is not None and still_fmt is not None:
            path = output.with_name(f"{output.stem}-{progress.step:04d}{output.suffix}")
            write_atomically(
                path, imaging.encode(progress.preview, still_fmt, quality=args.quality)
            )

    interrupt = Interrupt()
    try:
        with interrupt:  # Ctrl-C or SIGTERM stops at the next step
            painting = Painting(
                model, content, styles, params, policy_for(device, precision),
                on_progress=on_progress, should_cancel=interrupt.requested, plan=plan,
            )  # fmt: skip
            result = painting.run()
    except Cancelled:
        bar.close()
        print(f"stylebot: {interrupt.what}; nothing written", file=sys.stderr)
        return interrupt.code
    bar.close()
    return result


def _check_output(args: argparse.Namespace, output: Path, moving: bool = False) -> str:
    """The output's format, once the output options are checked."""
    fmt = (CLIP_OUTPUTS if moving else OUTPUT_FORMATS).get(output.suffix.lower())
    if fmt is None and moving:
        raise UsageError(
            f"the content is a moving picture: the output must end in {', '.join(CLIP_OUTPUTS)} "
            f"(or give --first-frame for a still): {output}"
        )
    if fmt is None:
        raise UsageError(f"the output must end in {', '.join(OUTPUT_FORMATS)}: {output}")
    if not output.parent.resolve().is_dir():
        raise UsageError(f"the output folder does not exist: {output.parent}")
    if not 1 <= args.quality <= 100:
        raise UsageError("--quality must be between 1 and 100")
    if args.save_every < 0:
        raise UsageError("--save-every must be 0 or more")
    if args.memory_limit is not None and not args.memory_limit > 0:
        raise UsageError("--memory-limit must be above 0 (GB)")
    if args.tile_size is not None and args.tile_size < 64:
        raise UsageError("--tile-size must be at least 64 (pixels)")
    return fmt


class Interrupt:
    """Ctrl-C or SIGTERM while a run paints: asks it to stop (`requested`), instead of a
    traceback or a silent death; `what` says which, and `code` is the shell's for it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def what(self) -> str:
        return "stopped (SIGTERM)" if self.signum == signal.SIGTERM else "interrupted"

    @property
    def code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def __enter__(self) -> Interrupt:
        self._previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signum = signum


def _plan(
    args: argparse.Namespace, params: StyleParams, device, width: int, height: int, frames: int
):
    """The memory plan (bot/engine/memory.py) within --memory-limit, with --tile-size forced."""
    from bot.engine.devices import memory_budget, policy_for
    from bot.engine.memory import DoesNotFit, clip_chunk, plan_job

    limit = int(args.memory_limit * 2**30) if args.memory_limit else None
    budget = memory_budget(device, limit)
    # auto on a CPU is measured later, with the model: planned here as fp32, the larger of the two
    precision = policy_for(device, args.precision).precision
    try:
        return plan_job(
            params, width, height, budget, frames=frames,
            precision=precision, tile=args.tile_size, max_chunk=clip_chunk(device.type),
        )  # fmt: skip
    except DoesNotFit as exc:
        advice = ": leave --tile-size out to have a size chosen" if args.tile_size else ""
        raise UsageError(f"{exc}{advice}") from None


def _describe(plan, params: StyleParams, frames: int) -> str:
    parts = [f"{plan.chunk} frames a pass"] if frames > 1 else []
    if plan.tile is not None:
        parts.append(f"tiles of {plan.tile} px")
    if params.optimizer == "lbfgs" and plan.history != 100:
        parts.append(f"L-BFGS history {plan.history}")
    from bot.engine.memory import size_text

    return f"; {', '.join(parts)} (about {size_text(plan.bytes)})" if parts else ""


def write_atomically(path: Path, data: bytes) -> None:
    """Write through a new, unpredictably named file in the same folder (never one that exists,
    never through a symlink), then rename it over `path`. The file gets the usual permissions
    (0666 less the umask), not mkstemp's 0600, so that others may read it as with any new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
