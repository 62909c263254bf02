"""`stylebot evaluate`: style and content distances of stylized pictures (see bot/engine/quality.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot.cli import UsageError
from bot.engine import imaging
from bot.engine.params import WEIGHTS_ENV, ImageLimits


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="how close OUTPUTs are to STYLE (Gram distance) and to CONTENT (feature distance)",
        description="Prints, for each output, the style distance (relative Frobenius distance of the Gram "
        "matrices, averaged over relu1_1..relu5_1) and the content distance (relative squared "
        "distance at relu4_2), computed with the loaded VGG-19. Lower is closer.",
    )
    p.add_argument("content", help="the content image the outputs were made from")
    p.add_argument("style", help="the style image the outputs were made from")
    p.add_argument("outputs", nargs="+", metavar="output", help="stylized pictures to score")
    p.add_argument(
        "--weights",
        default=None,
        help=f"VGG-19 state-dict file (default: ${WEIGHTS_ENV}, then the hub cache)",
    )
    p.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


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

    content, style = (
        read_image(args.content, "content image"),
        read_image(args.style, "style image"),
    )
    outputs = {path: read_image(path, "output") for path in args.outputs}
    model = load_vgg19(args.weights, device=parse_device(args.device))
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
