"""`stylebot evaluate`: style and content distances of stylized pictures (see bot/engine/quality.py);
with --pairs, a configuration run over a folder of content/style pairs, with its work and time."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bot.cli import UsageError, add_command
from bot.cli.common import add_model_options, weights_of
from bot.cli.sheet import contact_sheet
from bot.engine.params import (
    IMAGE_EXTENSIONS,
    INITS,
    MAX_SIZE,
    MAX_STEPS,
    OPTIMIZERS,
    PRECISIONS,
    ImageLimits,
    StyleParams,
)
from bot.media import imaging

DEFAULTS = StyleParams()


ABOUT = """how close OUTPUTs are to STYLE (Gram distance) and to CONTENT (feature distance)

Prints, for each output, the style distance (relative Frobenius distance of the Gram matrices,
averaged over relu1_1..relu5_1) and the content distance (relative squared distance at relu4_2),
computed with the loaded VGG-19. Lower is closer.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(subparsers, "evaluate", ABOUT, run)
    p.add_argument("content", nargs="?", help="the content image the outputs were made from")
    p.add_argument("style", nargs="?", help="the style image the outputs were made from")
    p.add_argument("outputs", nargs="*", metavar="output", help="stylized pictures to score")
    g = p.add_argument_group(
        "a configuration over pairs",
        "--pairs FOLDER paints every pair in FOLDER (each subfolder holds one content.* and one "
        "style.* picture) with the configuration below, as a job does, and prints per pair and "
        "on average: the work (full-size step equivalents: a step at a quarter of the pixels "
        "counts a quarter), the seconds, and both distances. Run it twice with two "
        "configurations to compare them.",
    )
    g.add_argument("--pairs", metavar="FOLDER", help="the folder of pairs")
    g.add_argument("--size", type=int, default=DEFAULTS.size, help="(default: %(default)s)")
    g.add_argument(
        "--steps",
        type=int,
        default=DEFAULTS.steps,
        help="at the final size; 0: the size's schedule, as a job without steps (default: "
        "%(default)s)",
    )
    g.add_argument(
        "--coarse-steps",
        type=int,
        default=DEFAULTS.coarse_steps,
        help="of each coarser level; 0: as many as --steps (default: %(default)s)",
    )
    g.add_argument(
        "--levels", type=int, default=0, help="pyramid levels; 0: automatic (default: %(default)s)"
    )
    g.add_argument(
        "--strength",
        type=float,
        default=DEFAULTS.strength,
        help="style strength, as stylize's: 1 is the default balance (default: %(default)s)",
    )
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    g.add_argument("--init", choices=INITS, default=DEFAULTS.init, help="(default: %(default)s)")
    g.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULTS.tolerance,
        help="stop a level once J fell by less than this fraction over 10 steps (default: "
        "%(default)s)",
    )
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="(default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    g.add_argument(
        "--shape-buckets",
        action="store_true",
        help="paint each still at its shape bucket and deliver it at its own shape, as a worker "
        "that batches jobs does (bot/media/buckets.py); compare with a run without",
    )
    g.add_argument(
        "--curve",
        metavar="W,W,...",
        help="also score each picture as it stands when the work done reaches each W (full-size "
        "step equivalents; a coarse level's picture is enlarged): distance against work",
    )
    g.add_argument(
        "--against",
        metavar="JSON",
        help="an earlier run's --json output (the baseline): also print each pair's change of "
        "both distances against it, and whether it is within the bar (style distance no "
        "higher, content distance at most 2 %% higher)",
    )
    g.add_argument("--save", metavar="FOLDER", help="also write each result, as <pair>.png")
    g.add_argument(
        "--sheet",
        metavar="PNG",
        help="also write one picture with each pair's content, style and result side by side",
    )
    g.add_argument(
        "--beside",
        metavar="FOLDER",
        action="append",
        default=[],
        help="with --sheet: also show the <pair>.png that an earlier --save wrote to FOLDER "
        "(repeatable), before this run's result",
    )
    add_model_options(p, precision=None)  # --precision is the configuration's (above)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def read_image(path: str, what: str):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    return imaging.decode(data, ImageLimits(), name=f"{what} {path}")


def run(args: argparse.Namespace) -> int:
    from bot.engine.devices import parse_device
    from bot.engine.quality import evaluate
    from bot.engine.vgg import load_vgg19

    if args.pairs:
        if args.content or args.outputs:
            raise UsageError("give --pairs FOLDER, or CONTENT STYLE OUTPUT..., not both")
        return run_pairs(args)
    if not (args.content and args.style and args.outputs):
        raise UsageError("give CONTENT STYLE OUTPUT... (or --pairs FOLDER)")
    content, style = (
        read_image(args.content, "content image"),
        read_image(args.style, "style image"),
    )
    outputs = {path: read_image(path, "output") for path in args.outputs}
    model = load_vgg19(weights_of(args), device=parse_device(args.device))
    scores = {path: evaluate(model, content, style, image) for path, image in outputs.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "weights": model.source.label,
                    "outputs": {
                        path: {
                            "style_distance": q.style_distance,
                            "content_distance": q.content_distance,
                            "style_layers": q.style_layers,
                        }
                        for path, q in scores.items()
                    },
                }
            )
        )
        return 0
    print(f"weights {model.source.label}")
    print(f"{'style distance':>15} {'content distance':>17}  output")
    for path, q in scores.items():
        print(f"{q.style_distance:>15.4f} {q.content_distance:>17.4f}  {path}")
    return 0


def find_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """Each subfolder of `folder` with one content.* and one style.* picture, by its name."""
    if not folder.is_dir():
        raise UsageError(f"--pairs: no such folder: {folder}")
    pairs = {}
    for pair in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = {
            role: [f for f in pair.glob(f"{role}.*") if f.suffix.lower() in IMAGE_EXTENSIONS]
            for role in ("content", "style")
        }
        if len(found["content"]) != 1 or len(found["style"]) != 1:
            raise UsageError(f"--pairs: {pair} needs one content.* and one style.* picture")
        pairs[pair.name] = (found["content"][0], found["style"][0])
    if not pairs:
        raise UsageError(f"--pairs: {folder} has no pair folders (each with content.* and style.*)")
    return pairs


def run_pairs(args: argparse.Namespace) -> int:
    from bot.engine.devices import parse_device, policy_for
    from bot.engine.quality import trial
    from bot.engine.vgg import load_vgg19

    if not 16 <= args.size <= MAX_SIZE or not 0 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--size takes 16 to {MAX_SIZE}, --steps 1 to {MAX_STEPS}")
    params = StyleParams(
        size=args.size,
        steps=args.steps,
        coarse_steps=args.coarse_steps,
        pyramid_levels=args.levels,
        strength=args.strength,
        optimizer=args.optimizer,
        init=args.init,
        tolerance=args.tolerance,
        seed=args.seed,
    ).validate()
    baseline = read_baseline(args.against) if args.against else None
    pairs = find_pairs(Path(args.pairs))
    if baseline is not None and not set(baseline) & set(pairs):
        raise UsageError(f"--against: {args.against} has none of the pairs in {args.pairs}")
    checkpoints = parse_curve(args.curve)
    if args.sheet and not Path(args.sheet).resolve().parent.is_dir():
        raise UsageError(f"--sheet: the folder does not exist: {Path(args.sheet).parent}")
    for folder in args.beside:
        if not args.sheet or not Path(folder).is_dir():
            raise UsageError(f"--beside needs --sheet and an existing folder: {folder}")
    save = Path(args.save) if args.save else None
    if save is not None and not save.is_dir():
        raise UsageError(f"--save: no such folder: {save}")
    device = parse_device(args.device)
    model = load_vgg19(weights_of(args), device=device)
    policy = policy_for(device, args.precision)
    pictures: list[tuple[str, list]] = []
    rows: dict[str, dict[str, float]] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    for name, (content_path, style_path) in pairs.items():
        content = read_image(str(content_path), "content image")
        style = read_image(str(style_path), "style image")
        result = trial(model, content, style, params, policy, checkpoints, args.shape_buckets)
        if save is not None:
            (save / f"{name}.png").write_bytes(imaging.encode(result.image, "png"))
        if args.sheet:
            earlier = [Path(folder) / f"{name}.png" for folder in args.beside]
            pictures.append(
                (
                    f"{name}: style {result.quality.style_distance:.4f}, content "
                    f"{result.quality.content_distance:.4f}",
                    [
                        content,
                        style,
                        *(read_image(str(p), "result") if p.is_file() else None for p in earlier),
                        result.image,
                    ],
                )
            )
        rows[name] = {
            "work": result.work,
            "seconds": result.seconds,
            "style_distance": result.quality.style_distance,
            "content_distance": result.quality.content_distance,
        }
        curves[name] = [
            {"work": w, "style_distance": q.style_distance, "content_distance": q.content_distance}
            for w, q in result.curve
        ]
    if args.sheet:
        columns = ["content", "style", *args.beside, "this run"]
        sheet = contact_sheet(columns, pictures)
        Path(args.sheet).write_bytes(imaging.encode(sheet, "png"))
    keys = ("work", "seconds", "style_distance", "content_distance")
    average = {k: sum(r[k] for r in rows.values()) / len(rows) for k in keys}
    config = {
        "size": params.size,
        "steps": params.final_steps,
        "coarse_steps": params.coarse_steps,
        "levels": params.levels,
        "strength": params.strength,
        "optimizer": str(params.optimizer),
        "init": str(params.init),
        "tolerance": params.tolerance,
        "precision": policy.precision,
        "seed": params.seed,
        "shape_buckets": args.shape_buckets,
    }
    against = compare(rows, baseline) if baseline is not None else None
    if args.json:
        out = {
            "weights": model.source.label,
            "config": config,
            "pairs": rows,
            "average": average,
            "curves": curves if checkpoints else {},
        }
        if against is not None:
            out["against"] = against
        print(json.dumps(out))
        return 0
    print(f"weights {model.source.label}; " + ", ".join(f"{k} {v}" for k, v in config.items()))
    print(f"{'work':>8} {'seconds':>9} {'style distance':>15} {'content distance':>17}  pair")
    for name, r in [*rows.items(), ("(average)", average)]:
        print(
            f"{r['work']:>8.1f} {r['seconds']:>9.1f} {r['style_distance']:>15.4f} "
            f"{r['content_distance']:>17.4f}  {name}"
        )
    if checkpoints:
        print_curves(curves)
    if against is not None:
        print_against(against)
    return 0


# Issue 20's bar for a faster configuration: per pair, a style distance no higher than the
# baseline's and a content distance at most this much higher.
CONTENT_SLACK = 0.02


def read_baseline(path: str) -> dict[str, dict[str, float]]:
    """The pairs of an earlier `evaluate --pairs --json` output."""
    try:
        pairs = json.loads(Path(path).read_text())["pairs"]
        return {
            name: {k: float(row[k]) for k in ("style_distance", "content_distance")}
            for name, row in pairs.items()
        }
    except OSError as exc:
        raise UsageError(f"--against: cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(
            f"--against: {path} is not the --json output of `stylebot evaluate --pairs`"
        ) from None


def compare(
    rows: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]]
) -> dict[str, object]:
    """Each pair's change of both distances against the baseline (a fraction: -0.1 is 10 %
    closer), whether it is within the bar, and how many pairs are; pairs missing from the
    baseline are left out."""
    per_pair: dict[str, dict[str, object]] = {}
    for name, row in rows.items():
        if name not in baseline:
            continue
        base = baseline[name]
        style = change(row["style_distance"], base["style_distance"])
        content = change(row["content_distance"], base["content_distance"])
        per_pair[name] = {
            "style_change": style,
            "content_change": content,
            "within": style <= 0.0 and content <= CONTENT_SLACK,
        }
    return {
        "pairs": per_pair,
        "within": sum(bool(p["within"]) for p in per_pair.values()),
        "compared": len(per_pair),
    }


def change(value: float, base: float) -> float:
    """value / base - 1; a baseline of 0 (a perfect match) is matched only by 0."""
    if base > 0:
        return value / base - 1.0
    return 0.0 if value <= 0 else math.inf


def print_against(against: dict) -> None:
    print(
        f"against the baseline (within: style no higher, content at most "
        f"{CONTENT_SLACK:.0%} higher):"
    )
    for name, p in against["pairs"].items():
        print(
            f"  style {p['style_change']:+7.1%}  content {p['content_change']:+7.1%}  "
            f"{'within' if p['within'] else 'OUTSIDE'}  {name}"
        )
    print(f"  {against['within']} of {against['compared']} pairs within the bar")


def parse_curve(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        points = [float(w) for w in text.split(",")]
    except ValueError:
        raise UsageError(f"--curve takes work figures separated by commas, not {text!r}") from None
    if any(w <= 0 for w in points):
        raise UsageError("--curve: each work figure must be above 0")
    return points


def print_curves(curves: dict[str, list[dict[str, float]]]) -> None:
    """Distance against work, one line per checkpoint and pair."""
    print("curve (style distance, content distance at the work done):")
    for name, points in curves.items():
        cells = "  ".join(
            f"{p['work']:.0f}: {p['style_distance']:.4f} {p['content_distance']:.4f}"
            for p in points
        )
        print(f"  {name}  {cells}")
