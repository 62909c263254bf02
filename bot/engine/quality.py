"""How close a stylized picture is to its style and to its content, measured with VGG-19.

  style distance   = mean over the style layers of ||G(output) - G(style)||_F / ||G(style)||_F,
                     Gram matrices per position (divided by n_H n_W), so sizes may differ;
  content distance = ||F(output) - F(content)||^2 / ||F(content)||^2 at each content layer, averaged.

Both are 0 for a perfect match; they compare runs of the same inputs (a fast path against the
reference path, tiled against untiled), not pictures of different inputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from bot.engine import colour
from bot.engine.devices import DevicePolicy
from bot.engine.losses import gram
from bot.engine.painting import Painting
from bot.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleParams, fit_size
from bot.engine.vgg import VGG19Features
from bot.media import buckets


@dataclass(frozen=True)
class Quality:
    style_distance: float
    content_distance: float
    style_layers: dict[str, float]


@torch.no_grad()
def evaluate(
    model: VGG19Features,
    content: Image.Image,
    style: Image.Image,
    output: Image.Image,
    *,
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
) -> Quality:
    """Distances of `output` to `style` and to `content` (resized to the output's size), in fp32."""
    device = next(model.parameters()).device
    size = output.size
    style_size = fit_size(*style.size, max(size))
    x = colour.to_tensor(output).to(device)
    c = colour.to_tensor(content.resize(size, Image.Resampling.LANCZOS)).to(device)
    s = colour.to_tensor(style.resize(style_size, Image.Resampling.LANCZOS)).to(device)
    names = (*style_layers, *content_layers)
    fx, fc, fs = model(x, names), model(c, content_layers), model(s, style_layers)
    per_layer = {}
    for n in style_layers:
        gx = gram(fx[n].float()) / (fx[n].shape[-2] * fx[n].shape[-1])
        gs = gram(fs[n].float()) / (fs[n].shape[-2] * fs[n].shape[-1])
        per_layer[n] = float(torch.linalg.norm(gx - gs) / torch.linalg.norm(gs).clamp_min(1e-30))
    content_terms = [
        float(
            (fx[n].float() - fc[n].float()).square().sum()
            / fc[n].float().square().sum().clamp_min(1e-30)
        )
        for n in content_layers
    ]
    return Quality(
        style_distance=sum(per_layer.values()) / len(per_layer),
        content_distance=sum(content_terms) / len(content_terms),
        style_layers=per_layer,
    )


@dataclass(frozen=True)
class Trial:
    """One configuration run on one content/style pair: its work, its time and its quality."""

    image: Image.Image
    work: float  # full-size step equivalents (Painting.work)
    seconds: float
    quality: Quality
    curve: list[tuple[float, Quality]]  # (work done, quality then) at each checkpoint reached


def trial(
    model: VGG19Features,
    content: Image.Image,
    style: Image.Image,
    params: StyleParams,
    policy: DevicePolicy,
    checkpoints: Sequence[float] = (),
    shape_buckets: bool = False,
) -> Trial:
    """Paint `content` in the style of `style` with `params`, as a job does, and score the result
    against the pair (in fp32, whatever precision painted it).

    `checkpoints` (full-size step equivalents) also score the picture as it stands when the work
    done first reaches each, enlarged to the final size at a coarse level: the curve of distance
    against work. Scoring time is left out of `seconds`. `shape_buckets`: painted at its shape
    bucket, as a batching worker paints it (bot/media/buckets.py), and delivered at its shape."""

    def score(image: Image.Image) -> Quality:
        return evaluate(
            model,
            content,
            style,
            image,
            style_layers=params.style_layers,
            content_layers=params.content_layers,
        )

    pending = sorted(checkpoints)
    curve: list[tuple[float, Quality]] = []
    scoring = 0.0

    def after_step() -> None:
        nonlocal scoring
        if pending and painting.work_done >= pending[0] - 1e-9:
            begun = time.perf_counter()
            while pending and painting.work_done >= pending[0] - 1e-9:
                pending.pop(0)
            if not painting.done:  # the end is scored below
                curve.append((painting.work_done, score(painting.picture())))
            scoring += time.perf_counter() - begun

    started = time.perf_counter()
    width, height = fit_size(*content.size, params.size)
    canvas = buckets.canvas_for(width, height, 1, shape_buckets)
    painting = Painting(model, content, [style], params, policy, canvas=canvas)
    result = painting.run(after_step)
    seconds = time.perf_counter() - started - scoring
    quality = score(result.image)
    curve.append((painting.work_done, quality))
    return Trial(result.image, painting.work_done, seconds, quality, curve)
