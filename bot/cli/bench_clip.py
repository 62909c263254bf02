"""`stylebot bench-clip`: a moving picture painted frame by frame alone (the baseline) and kept
steady (each temporal weight asked for), side by side: flicker (the warping error), the style and
content distances per frame, and the seconds per frame against a still of the same size."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bot.cli import UsageError, add_command
from bot.cli.common import add_model_options, precision_for, weights_of
from bot.engine.params import StyleParams

ABOUT = """measure a moving picture's flicker, quality and seconds per frame, steady and not

Paints one clip at each temporal weight (0: every frame alone, the baseline) and prints the warping
error, the mean style and content distances of the frames and the seconds per frame, with a still
of the same size for comparison. Without --content, a pan across a synthetic picture.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "bench-clip", ABOUT, run)
    p.add_argument(
        "--content", help="a moving picture, or a still to pan across (default: synthetic)"
    )
    p.add_argument("--style", help="the style picture (default: synthetic noise)")
    p.add_argument("--frames", type=int, default=8, help="frames of a pan (default: %(default)s)")
    p.add_argument("--size", type=int, default=128, help="longest side, px (default: %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="steps (default: %(default)s)")
    p.add_argument(
        "--temporal-weights",
        default=f"0,{StyleParams().temporal_weight:g}",
        help="comma-separated; 0 is the baseline (default: %(default)s)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="frames per VGG-19 pass (default: as the memory plan allows, at most 16 on a GPU, 1 on a CPU)",
    )
    add_model_options(p)
    p.add_argument("--out", help="a folder: each run's clip is written there as a GIF, to look at")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def pan(picture, frames: int, size: int):
    """A clip of `frames` frames moving across `picture` (a camera pan, 1/40 of the width a frame)."""
    from PIL import Image

    from bot.media.clips import Clip

    width, height = picture.size
    crop_w, crop_h = int(width * 0.7), int(height * 0.7)
    shift = max(1, width // 40)
    pictures = [
        picture.crop(
            (t * shift, t * shift // 3, t * shift + crop_w, t * shift // 3 + crop_h)
        ).resize((size, max(16, round(size * crop_h / crop_w))), Image.Resampling.LANCZOS)
        for t in range(frames)
    ]
    return Clip(pictures, [80] * frames, False, "GIF")


def _inputs(args: argparse.Namespace):
    from bot.engine import colour
    from bot.engine.benchmark import test_images
    from bot.media import clips, imaging

    if args.content:
        data = Path(args.content).read_bytes()
        if clips.is_moving(data):
            limits = clips.ClipLimits(max_frames=args.frames, max_seconds=60, max_side=args.size)
            clip = clips.decode_clip(data, clip_limits=limits)
        else:
            clip = pan(imaging.decode(data), args.frames, args.size)
    else:
        content, _ = test_images(args.size * 2)
        clip = pan(colour.to_image(content[0]), args.frames, args.size)
    if args.style:
        style = imaging.decode(Path(args.style).read_bytes())
    else:
        style = colour.to_image(test_images(args.size)[1][0])
    return clip, style


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from bot.engine.benchmark import synchronize
    from bot.engine.devices import memory_budget, parse_device, policy_for
    from bot.engine.memory import LBFGS_HISTORY, MemoryPlan, clip_chunk, plan_job
    from bot.engine.painting import Painting
    from bot.engine.quality import evaluate
    from bot.engine.vgg import load_vgg19
    from bot.media import encoding

    try:
        weights = [float(w) for w in args.temporal_weights.split(",")]
    except ValueError:
        raise UsageError("--temporal-weights takes numbers, e.g. 0,10") from None
    if args.frames < 2 or args.steps < 2 or args.chunk < 0:
        raise UsageError("--frames and --steps must be at least 2, --chunk 0 or more")
    if args.out and not Path(args.out).is_dir():  # said now, not after minutes of painting
        raise UsageError(f"--out: no such folder: {args.out}")
    device = parse_device(args.device)
    model = load_vgg19(weights_of(args), device=device)
    policy = policy_for(device, precision_for(device, args.precision, model)[0])
    clip, style = _inputs(args)
    base = StyleParams(size=args.size, steps=args.steps, seed=0, pyramid_levels=1).validate()
    Painting(model, clip.frames[0], [style], base.replace(steps=2), policy).run()  # warm-up
    synchronize(device)
    started = time.perf_counter()
    Painting(model, clip.frames[0], [style], base, policy).run()
    synchronize(device)
    still = (time.perf_counter() - started) / args.steps
    runs = []
    for weight in weights:
        params = base.replace(temporal_weight=weight)
        synchronize(device)
        started = time.perf_counter()
        plan = MemoryPlan(0, LBFGS_HISTORY, None, args.chunk) if args.chunk else None
        if plan is None:
            budget = memory_budget(device, None)
            width, height = clip.frames[0].size
            plan = plan_job(
                params, width, height, budget, frames=len(clip.frames), precision=policy.precision,
                max_chunk=clip_chunk(device.type),
            )  # fmt: skip
        painting = Painting(model, clip, [style], params, policy, plan=plan)
        result = painting.run()
        synchronize(device)
        seconds = time.perf_counter() - started
        frames = result.clip.frames
        quality = [evaluate(model, c, style, o) for c, o in zip(clip.frames, frames, strict=True)]
        runs.append(
            {
                "temporal_weight": weight,
                "flicker": result.flicker,
                "style_distance": float(np.mean([q.style_distance for q in quality])),
                "content_distance": float(np.mean([q.content_distance for q in quality])),
                "seconds": seconds,
                "frame_step_ms": seconds / args.steps / len(frames) * 1000,
                "chunk": painting.plan.chunk,
            }
        )
        if args.out:
            path = Path(args.out) / f"clip-tw{weight:g}.gif"
            path.write_bytes(encoding.encode_clip(result.clip, "gif"))
    report = {
        "device": str(device),
        "precision": policy.precision,
        "frames": len(clip.frames),
        "size": list(clip.frames[0].size),
        "steps": args.steps,
        "still_step_ms": still * 1000,
        "reliable_share": painting.temporal.motion.reliable_share() if painting.temporal else 0.0,
        "runs": runs,
    }
    baseline = next((r for r in runs if r["temporal_weight"] == 0), None)
    for entry in runs:
        if baseline is not None:
            for key in ("flicker", "style_distance", "content_distance"):
                entry[f"{key}_vs_baseline"] = entry[key] / max(baseline[key], 1e-12)
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['frames']} frames of {report['size'][0]}x{report['size'][1]}, {args.steps} steps, "
        f"{report['precision']} on {device}; a still: {report['still_step_ms']:.1f} ms a step"
    )
    for entry in runs:
        relative = (
            f" ({entry['flicker_vs_baseline']:.2f}x, style {entry['style_distance_vs_baseline']:.3f}x, "
            f"content {entry['content_distance_vs_baseline']:.3f}x)"
            if baseline is not None
            else ""
        )
        print(
            f"temporal weight {entry['temporal_weight']:g}: flicker {entry['flicker']:.4f}, style "
            f"{entry['style_distance']:.4f}, content {entry['content_distance']:.4f}{relative}; "
            f"{entry['frame_step_ms']:.1f} ms a frame-step",
            file=sys.stdout,
        )
    return 0
