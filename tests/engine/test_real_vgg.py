"""The real VGG-19 (the bundled original, Caffe's): its input convention, and a small painting.

The fingerprint (tests/engine/data/vgg19_fingerprint.json) is each channel's mean activation at
relu1_1, relu3_1 and relu5_1 for a fixed picture, recorded with the convention that paints the
classic pictures (BGR, 0-255, the mean pixel subtracted). A wrong channel order, scale or mean
moves it by 13 % or more at some layer; float differences between CPUs by well under 0.1 %.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from bot.engine import colour
from bot.engine.params import StyleParams
from bot.engine.quality import evaluate
from bot.engine.transfer import stylize
from bot.engine.vgg import VGG19Features, load_vgg19
from tests.conftest import gradient_image, noise_image

FINGERPRINT = json.loads((Path(__file__).parent / "data" / "vgg19_fingerprint.json").read_text())
TOLERANCE = 1e-3  # relative L2 distance of a layer's channel means (CPUs agree to about 1e-6)
CAFFE_MEAN_RGB = torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def real_vgg():
    return load_vgg19()  # nothing named: the bundled original


def fingerprint(model: VGG19Features, picture: torch.Tensor) -> dict[str, torch.Tensor]:
    out = model(picture, list(FINGERPRINT))
    return {name: out[name].mean(dim=(0, 2, 3)) for name in FINGERPRINT}


def distances(measured: dict[str, torch.Tensor]) -> dict[str, float]:
    return {
        name: float(
            torch.linalg.norm(measured[name] - torch.tensor(want))
            / torch.linalg.norm(torch.tensor(want))
        )
        for name, want in FINGERPRINT.items()
    }


def test_the_default_is_the_original_vgg19_in_caffes_convention(real_vgg):
    assert real_vgg.source.kind == "original" and real_vgg.input_format == "caffe"
    picture = colour.to_tensor(gradient_image(64, 48, seed=3))
    assert max(distances(fingerprint(real_vgg, picture)).values()) < TOLERANCE


def test_a_wrong_convention_moves_the_fingerprint(real_vgg):
    """The fingerprint's power: each mistake the convention can hold is seen, by far."""
    picture = colour.to_tensor(gradient_image(64, 48, seed=3))
    mistakes = {
        "RGB instead of BGR": picture.flip(1),
        "0-1 instead of 0-255": picture / 255,
        "no mean subtracted": picture + CAFFE_MEAN_RGB / 255,
    }
    for mistake, seen_as in mistakes.items():
        assert max(distances(fingerprint(real_vgg, seen_as)).values()) > 0.1, mistake
    torchvision_convention = VGG19Features(real_vgg.layers, "torchvision", real_vgg.source)
    assert max(distances(fingerprint(torchvision_convention, picture)).values()) > 0.5


def striped_style(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    r = ((x + y) // 6 % 2) * 220 + 20
    g = ((x - y) // 9 % 2) * 120 + 60
    b = np.where((x // 12 + y // 12) % 2 == 0, 200, 40)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


def house(width: int, height: int) -> Image.Image:
    """Sky, sun, grass and a house with a roof and a door: shapes a content layer sees."""
    w, h = width, height
    picture = Image.new("RGB", (w, h), (120, 170, 230))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, h * 2 // 3, w, h), fill=(60, 140, 50))
    draw.ellipse((w * 3 // 4, h // 10, w * 3 // 4 + h // 4, h // 10 + h // 4), fill=(250, 220, 60))
    draw.rectangle((w // 5, h // 3, w // 2, h * 5 // 6), fill=(180, 60, 40))
    draw.polygon(
        [(w // 6, h // 3), (w * 7 // 20, h // 8), (w * 11 // 20, h // 3)], fill=(90, 50, 30)
    )
    draw.rectangle((w // 3, h // 2, w * 2 // 5, h * 5 // 6), fill=(50, 30, 20))
    return picture


def test_a_small_painting_takes_the_style_and_keeps_the_content(real_vgg):
    """96x64, 20 steps, fp32. Measured on a 2-core AMD EPYC: the content itself is 0.924 from the
    style; strength 0.3 paints it to 0.556 with the content at 0.614 (noise is 0.977 from the
    content, the style picture 2.45); strength 1 to 0.367 and 1.35."""
    content, style = house(96, 64), striped_style(96, 96)
    before = evaluate(real_vgg, content, style, content)
    noise = evaluate(real_vgg, content, style, noise_image(96, 64))
    params = StyleParams(size=96, steps=20, seed=0)
    gentle, strong = (
        evaluate(
            real_vgg,
            content,
            style,
            stylize(
                real_vgg, content, [style], params.replace(strength=strength), precision="fp32"
            ).image,
        )
        for strength in (0.3, 1.0)
    )
    assert before.style_distance > 0.85
    assert gentle.style_distance < 0.7 * before.style_distance
    assert gentle.content_distance < 0.8 and gentle.content_distance < 0.85 * noise.content_distance
    # strength means more style and less content
    assert strong.style_distance < 0.8 * gentle.style_distance
    assert strong.content_distance > 1.5 * gentle.content_distance
