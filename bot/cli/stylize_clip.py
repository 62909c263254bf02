"""`stylebot stylize` for a moving picture (a GIF, APNG, animated WebP or a video clip): every
frame painted, kept steady along the content's motion (bot/engine/clip_painting.py), written as
a GIF, WebP, APNG or MP4 with the clip's timing and looping."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli import UsageError
from bot.engine import clips
from bot.engine.params import ImageLimits, StyleParams, describe_schedule

CLIP_OUTPUTS = {".gif": "gif", ".webp": "webp", ".png": "png", ".apng": "png", ".mp4": "mp4"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = StyleParams()
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


def run_clip(args: argparse.Namespace, data: bytes, params: StyleParams, styles: list) -> int:
    """Paint the moving picture `data` (its bytes) in the style of `styles`."""
    from bot.cli.progress import ProgressBar
    from bot.cli.stylize import Interrupt, write_atomically
    from bot.engine.clip_painting import ClipPainting
    from bot.engine.devices import memory_budget, parse_device, policy_for
    from bot.engine.imaging import ImageError, fit_size
    from bot.engine.memory import DoesNotFit, clip_chunk, plan_clip
    from bot.engine.progress import Cancelled, Progress
    from bot.engine.vgg import load_vgg19

    output = Path(args.output)
    fmt = CLIP_OUTPUTS[output.suffix.lower()]  # checked by stylize's _check_output
    params, notes = clips.clip_params(params)
    try:
        clip = clips.decode_clip(
            data, ImageLimits(), clips.ClipLimits.of(params), name=f"content {args.content}"
        )
    except ImageError as exc:
        raise UsageError(str(exc)) from None
    device = parse_device(args.device)
    policy = policy_for(device, args.precision)
    width, height = fit_size(*clip.frames[0].size, params.size)
    limit = int(args.memory_limit * 2**30) if args.memory_limit else None
    try:
        plan = plan_clip(
            params, width, height, len(clip.frames), memory_budget(device, limit),
            precision=policy.precision, max_chunk=clip_chunk(device.type),
        )  # fmt: skip
    except DoesNotFit as exc:
        raise UsageError(str(exc)) from None
    model = load_vgg19(
        args.weights, pooling=params.pooling, input_format=args.weights_format, device=device
    )
    bar = ProgressBar(enabled=not args.quiet)
    changes = f" ({'; '.join((*notes, *clip.changes))})" if notes or clip.changes else ""
    if not args.quiet:
        print(
            f"stylebot: {len(clip.frames)} frames of {width}x{height}, {clip.seconds:.1f} s{changes}, "
            f"{describe_schedule(params)} on {device}; {plan.chunk} frames a pass; weights {model.source.label}",
            file=sys.stderr,
        )

    def on_progress(progress: Progress) -> None:
        bar.update(progress)

    try:
        with Interrupt() as interrupt:
            painting = ClipPainting(
                model, clip, styles, params, policy,
                on_progress=on_progress, should_cancel=interrupt.requested, plan=plan,
            )  # fmt: skip
            result = painting.run()
    except Cancelled:
        bar.close()
        print("stylebot: interrupted; nothing written", file=sys.stderr)
        return 130
    bar.close()
    write_atomically(output, clips.encode_clip(result.clip, fmt, quality=args.quality))
    per_frame = result.elapsed / len(clip.frames)
    print(
        f"stylebot: wrote {output} ({len(clip.frames)} frames, {width}x{height}) in {result.elapsed:.1f} s "
        f"({per_frame:.2f} s a frame), seed {result.seed}, flicker {result.flicker:.4f}"
        + (f", converged at step {result.converged_at}" if result.converged_at else ""),
        file=sys.stderr,
    )
    return 0
