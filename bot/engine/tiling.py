"""VGG-19 statistics of a whole picture computed tile by tile, for pictures beyond memory.

The picture is cut into tiles. Each tile is a *core* (the cores partition the picture) and a
*margin* around it that VGG-19 sees but that the tile does not own. Core edges lie on a 16 px grid
(the stride of conv5), and so does every tile's origin, so at every layer the tile's positions
are the whole picture's positions, on the same pooling grid. At each layer the cores' positions
partition the whole picture's positions, so

  - a Gram matrix of the whole picture is the sum of the cores' Gram matrices, exactly;
  - the gradient of J with respect to the pixels is the sum over tiles of the gradient that flows
    from the tile's core positions back into the tile's pixels (core and margin), exactly,

provided the core's activations equal the whole picture's: the margin covers the receptive field
of the deepest layer used beyond the core's edge (memory.tile_margin: 80 px for relu5_1). So a
tiled step takes the whole picture's gradient, up to rounding, and nothing needs blending: every
step is one L-BFGS or Adam step over the whole image. The price is time: each step runs VGG-19
over the margins too, and twice over each tile (once for the Grams, once for the gradient).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from bot.engine.losses import gram
from bot.engine.memory import ALIGN, TILE_MARGIN
from bot.engine.params import LAYER_NAMES


@dataclass(frozen=True)
class TileSize:
    """How a picture is cut: cores of at most about `core` px a side, `margin` px around each."""

    core: int
    margin: int = TILE_MARGIN

    def tiles(self, height: int, width: int) -> list[Tile]:
        return plan_tiles(height, width, self.core, self.margin)


@dataclass(frozen=True)
class Tile:
    """Pixel bounds (end exclusive): the region VGG-19 sees and the core that the tile owns."""

    y0: int
    y1: int
    x0: int
    x1: int
    core_y0: int
    core_y1: int
    core_x0: int
    core_x1: int

    @property
    def region(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def core_of(self, features: torch.Tensor, stride: int) -> torch.Tensor:
        """The core's positions in the tile's features at a layer of this stride."""
        top = (self.core_y0 - self.y0) // stride
        left = (self.core_x0 - self.x0) // stride
        rows = self.core_y1 // stride - self.core_y0 // stride
        cols = self.core_x1 // stride - self.core_x0 // stride
        return features[..., top : top + rows, left : left + cols]

    def core_rows_cols(self, stride: int) -> tuple[slice, slice]:
        """The core's positions in the whole picture's features at a layer of this stride."""
        return (
            slice(self.core_y0 // stride, self.core_y1 // stride),
            slice(self.core_x0 // stride, self.core_x1 // stride),
        )


def _cuts(length: int, tile: int) -> list[int]:
    """Edges of ceil(length / tile) pieces of nearly equal size, inner edges on the ALIGN grid."""
    pieces = max(1, math.ceil(length / tile))
    inner = [round(i * length / pieces / ALIGN) * ALIGN for i in range(1, pieces)]
    return [0, *sorted({c for c in inner if 0 < c < length}), length]


def plan_tiles(height: int, width: int, tile: int, margin: int = TILE_MARGIN) -> list[Tile]:
    """Tiles of at most about `tile` px a side (cores) with `margin` px around, for a picture of
    this size; one tile (the whole picture, no margin) when it is not larger than `tile`."""
    margin = math.ceil(margin / ALIGN) * ALIGN
    ys, xs = _cuts(height, tile), _cuts(width, tile)
    tiles = []
    for top, bottom in zip(ys, ys[1:], strict=False):
        for left, right in zip(xs, xs[1:], strict=False):
            tiles.append(
                Tile(
                    y0=max(0, top - margin),
                    y1=min(height, bottom + margin),
                    x0=max(0, left - margin),
                    x1=min(width, right + margin),
                    core_y0=top,
                    core_y1=bottom,
                    core_x0=left,
                    core_x1=right,
                )
            )
    return tiles


def layer_stride(name: str) -> int:
    """How many pixels one position of this layer steps over: 2 per pooling before it."""
    index = LAYER_NAMES.index(name)
    return 2 ** sum(1 for n in LAYER_NAMES[:index] if n.startswith("pool"))


@torch.no_grad()
def whole_picture(
    model,
    image: torch.Tensor,
    *,
    gram_layers: Sequence[str],
    keep_layers: Iterable[str] = (),
    tiles: Sequence[Tile] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The Gram matrices (sums over positions, float32) of `gram_layers` and the activations of
    `keep_layers` for the whole `image` (1, 3, H, W), in one pass or tile by tile."""
    keep = tuple(keep_layers)
    names = tuple(dict.fromkeys((*gram_layers, *keep)))
    if tiles is None or len(tiles) == 1:  # one tile is the whole picture
        feats = model(image, names)
        return {n: gram(feats[n]) for n in gram_layers}, {n: feats[n] for n in keep}
    grams: dict[str, torch.Tensor] = {}
    kept: dict[str, torch.Tensor] = {}
    height, width = image.shape[-2:]
    for tile in tiles:
        feats = model(image[(..., *tile.region)], names)
        for n in gram_layers:
            g = gram(tile.core_of(feats[n], layer_stride(n)))
            grams[n] = g if n not in grams else grams[n] + g
        for n in keep:
            stride = layer_stride(n)
            if n not in kept:
                f = feats[n]
                kept[n] = f.new_zeros(1, f.shape[1], height // stride, width // stride)
            rows, cols = tile.core_rows_cols(stride)
            kept[n][..., rows, cols] = tile.core_of(feats[n], stride)
    return grams, kept
