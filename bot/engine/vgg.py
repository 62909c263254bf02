"""VGG-19 feature extractor with named layers, its input convention inside (the weights and
their convention come from bot/engine/weights.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch
from torch import nn

from bot.engine.params import LAYER_NAMES, VGG19_BLOCKS, vgg19_convolutions
from bot.engine.weights import (
    TORCHVISION_URL,
    InputFormat,
    WeightsError,
    WeightsSource,
    read_features,
    resolve_weights,
    torchvision_cache_path,
)

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def _build_layers(pooling: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for block, conv, in_channels, out_channels in vgg19_convolutions():
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
        if conv == VGG19_BLOCKS[block - 1]:
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """VGG-19's convolutional part, frozen, with the input normalisation inside.

    `forward(image, names)` takes an RGB batch in [0, 1] and returns the named activations,
    running the network only as far as the deepest requested layer.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        layers: nn.Sequential,
        input_format: InputFormat,
        source: WeightsSource,
        pooling: str = "max",
    ):
        super().__init__()
        self.layers = layers
        self.pooling = pooling
        self.input_format = input_format
        self.source = source
        if input_format == "caffe":
            mean = torch.tensor(_CAFFE_MEAN_BGR) / 255.0
            std = torch.full((3,), 1 / 255.0)
        else:
            mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1))
        self.register_buffer("std", std.view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, image: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(names)
        if unknown := wanted - set(LAYER_NAMES):
            raise ValueError(f"unknown VGG-19 layers: {sorted(unknown)}")
        last = max(LAYER_NAMES.index(n) for n in wanted)
        x = image.flip(1) if self.input_format == "caffe" else image
        x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for index in range(last + 1):
            x = self.layers[index](x)
            name = LAYER_NAMES[index]
            if name in wanted:
                # the ReLU after a conv works in place: keep a copy of a captured conv output
                out[name] = x.clone() if name.startswith("conv") else x
        return out


def load_vgg19(
    weights: str | None = None,
    *,
    pooling: str = "max",
    device: torch.device | str = "cpu",
) -> VGG19Features:
    """Load VGG-19's features (no classifier), frozen, on `device`: the weights that `weights`
    names (bot/engine/weights.py; None is the bundled original) with their input convention."""
    source = resolve_weights(weights)
    layers = _build_layers(pooling)
    input_format = source.input_format
    if source.kind == "random":
        log.warning("VGG-19 has RANDOM weights: for tests only, the output is not style transfer")
        torch.manual_seed(0)
        for module in layers:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
    else:
        features, input_format = read_features(source)
        expected = layers.state_dict()
        missing = sorted(set(expected) - set(features), key=_natural)
        if missing:
            raise WeightsError(
                f"{source.path} is not a VGG-19 state dict: missing {', '.join('features.' + k for k in missing[:4])}"
            )
        for key, tensor in expected.items():
            if features[key].shape != tensor.shape:
                raise WeightsError(
                    f"{source.path} is not a VGG-19 state dict: features.{key} has shape "
                    f"{tuple(features[key].shape)}, expected {tuple(tensor.shape)}"
                )
        layers.load_state_dict({k: features[k].float() for k in expected})
    return VGG19Features(layers, input_format, source, pooling).to(device)


def _natural(key: str) -> tuple[int, str]:
    head, _, tail = key.partition(".")
    return (int(head) if head.isdigit() else 0, tail)


def download_weights() -> str:
    """Fetch torchvision's ImageNet VGG-19 weights into the torch hub cache; return the path."""
    path = torchvision_cache_path()
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(TORCHVISION_URL, path, hash_prefix="dcbb9e9d", progress=True)
    return path
