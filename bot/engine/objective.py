"""J(x) for one pyramid level: targets computed once, each layer term with its scale."""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence

import torch

from bot.engine.flow import Motion, temporal_differences
from bot.engine.losses import (
    content_cost,
    gram_cost,
    gram_norm_cost,
    gram_surrogate,
    layer_style_cost,
    total_variation,
)
from bot.engine.params import LAYER_NAMES, StyleParams
from bot.engine.tiling import TileSize, layer_stride, whole_picture
from bot.engine.vgg import VGG19Features

StyleCache = MutableMapping[str, dict[str, torch.Tensor]]


def layer_shapes(height: int, width: int) -> dict[str, tuple[int, int]]:
    """(n_H, n_W) of every VGG-19 layer for an input of this size: each pool halves it."""
    shapes = {}
    for name in LAYER_NAMES:
        if name.startswith("pool"):
            height, width = height // 2, width // 2
        shapes[name] = (height, width)
    return shapes


def weighted_sum(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    total = tensors[0] * weights[0]
    for tensor, weight in zip(tensors[1:], weights[1:], strict=True):
        total = total + tensor * weight
    return total


def style_cache_key(style: torch.Tensor, layers: Sequence[str], pooling: str) -> str:
    """Which cached Grams fit: the style's pixels as prepared (on the CPU, before any copy to the
    device), its size, the layers and the pooling. The device is the worker's own."""
    digest = hashlib.sha1(style.numpy().tobytes()).hexdigest()
    return f"{digest}:{tuple(style.shape)}:{','.join(layers)}:{pooling}"


class Objective:
    """J(x) = sum of the weighted content terms + the weighted style terms (+ total variation).

    `content` and `styles` are (1, 3, H, W) tensors on the CPU, prepared for this level; they are
    moved to the model's device here. With `tiling`, every pass over a picture (the targets, and
    each step's gradient) goes tile by tile (bot/engine/tiling.py): same J, bounded memory.
    """

    def __init__(
        self,
        model: VGG19Features,
        params: StyleParams,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        blend: Sequence[float],
        style_cache: StyleCache | None = None,
        tiling: TileSize | None = None,
    ):
        self.model, self.params, self.tiling = model, params, tiling
        self.style_layers = params.style_layers
        self.content_layers = params.content_layers
        self.names = tuple(dict.fromkeys((*self.style_layers, *self.content_layers)))
        device = next(model.parameters()).device
        self.shapes = shapes = layer_shapes(*content.shape[-2:])
        self.tiles = tiling.tiles(*content.shape[-2:]) if tiling else None
        self.cache_hits = 0  # style images whose Grams came from `style_cache`
        if self.tiles is not None and len(self.tiles) == 1:
            self.tiles = None
        with torch.no_grad():
            content_grams, self.content_targets = whole_picture(
                model,
                content.to(device),
                gram_layers=self.style_layers,
                keep_layers=self.content_layers,
                tiles=self.tiles,
            )
            per_position = [self._style_grams(s, device, style_cache) for s in styles]
            # Departs from the seed only when the style image's size differs from the generated
            # image's: Gram entries are sums over positions, so the style's Gram is rescaled to
            # the generated image's number of positions (a no-op for equal sizes).
            self.style_targets = {
                n: weighted_sum([g[n] for g in per_position], blend) * (shapes[n][0] * shapes[n][1])
                for n in self.style_layers
            }
            self.content_scale, self.style_scale = self._scales(content_grams, shapes)

    @property
    def tiled(self) -> bool:
        return self.tiles is not None

    def _scales(
        self, content_grams: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]]
    ) -> tuple[dict[str, float], dict[str, float]]:
        params = self.params
        lambdas = dict(zip(self.style_layers, params.layer_weights, strict=True))
        if params.raw_weights:  # the seed's J = alpha J_content + beta J_style, unnormalised
            alpha, beta = float(params.content_weight or 0.0), float(params.style_weight or 0.0)
            return {n: alpha for n in self.content_layers}, {
                n: beta * lambdas[n] for n in self.style_layers
            }
        # Strength mode (departs from the seed): each term is divided by a scale of its own, so the
        # balance depends neither on the scale of the VGG-19 weights nor on how much energy the
        # style image has: a content layer by its cost for an all-zero image, a style layer by its
        # cost for the content image (the gap to close), at least 5 % of its cost for an all-zero
        # image (for a style that is the content itself).
        beta = params.strength * params.style_balance  # the schedule's balance (params.py)
        share = 1.0 / len(self.content_layers)
        content_scale = {
            n: share / max(float(t.float().square().sum()) / (4.0 * t.numel()), 1e-30)
            for n, t in self.content_targets.items()
        }
        style_scale = {}
        for n in self.style_layers:
            gap = float(gram_cost(self.style_targets[n], content_grams[n], *shapes[n]))
            floor = 0.05 * float(gram_norm_cost(self.style_targets[n], *shapes[n]))
            style_scale[n] = beta * lambdas[n] / max(gap, floor, 1e-30)
        return content_scale, style_scale

    def _style_grams(
        self, style: torch.Tensor, device: torch.device, cache: StyleCache | None
    ) -> dict[str, torch.Tensor]:
        """Gram matrices of one style image divided by its number of positions (n_H n_W)."""
        key = (
            style_cache_key(style, self.style_layers, self.model.pooling)
            if cache is not None
            else None
        )
        if key is not None and cache is not None and key in cache:
            self.cache_hits += 1
            return cache[key]
        height, width = style.shape[-2:]
        tiles = self.tiling.tiles(height, width) if self.tiling else None
        sums, _ = whole_picture(
            self.model, style.to(device), gram_layers=self.style_layers, tiles=tiles
        )
        shapes = layer_shapes(height, width)
        grams = {n: (g / (shapes[n][0] * shapes[n][1])).detach() for n, g in sums.items()}
        if key is not None and cache is not None:
            cache[key] = grams
        return grams

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """J(x) and its terms in one graph (untiled only: a tiled J has no single graph)."""
        assert not self.tiled, "a tiled objective gives its gradient through gradient()"
        return self.loss(self.model(x, self.names), x)

    def gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """dJ/dx and the terms of J at x, in one pass or tile by tile."""
        if self.tiles is None:
            loss, terms = self(x)
            (grad,) = torch.autograd.grad(loss, x)
            return grad, terms
        return self._tiled_gradient(x)

    def _tiled_gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Two passes over the tiles: the whole picture's Grams (no graph), then per tile the
        gradient of a surrogate whose gradient at the core's positions is J's (see
        losses.gram_surrogate and bot/engine/tiling.py), added into the whole image's gradient."""
        assert self.tiles is not None
        pixels = x.detach()
        grams, _ = whole_picture(
            self.model, pixels, gram_layers=self.style_layers, tiles=self.tiles
        )
        style = pixels.new_zeros((), dtype=torch.float32)
        weights = {}
        for n in self.style_layers:
            n_h, n_w = self.shapes[n]
            n_c = grams[n].shape[0]
            k = 1.0 / (4.0 * n_c**2 * (n_h * n_w) ** 2)
            diff = self.style_targets[n] - grams[n]
            style = style + self.style_scale[n] * k * (diff * diff).sum()
            weights[n] = (-2.0 * k * self.style_scale[n]) * diff
        grad = torch.zeros_like(pixels)
        content = pixels.new_zeros((), dtype=torch.float32)
        for tile in self.tiles:
            patch = pixels[(..., *tile.region)].clone().requires_grad_(True)
            feats = self.model(patch, self.names)
            surrogate = sum(
                gram_surrogate(weights[n], tile.core_of(feats[n], layer_stride(n)))
                for n in self.style_layers
            )
            tile_content = self._tile_content(tile, feats)
            (g,) = torch.autograd.grad(surrogate + tile_content, patch)
            grad[(..., *tile.region)] += g
            content = content + tile_content.detach()
        total = content + style
        terms = {"content": content, "style": style}
        if self.params.tv_weight > 0:
            leaf = pixels.clone().requires_grad_(True)
            tv = self.params.tv_weight * total_variation(leaf)
            (g,) = torch.autograd.grad(tv, leaf)
            grad += g
            total = total + tv.detach()
            terms["tv"] = tv.detach()
        terms["total"] = total
        return grad, terms

    def _tile_content(self, tile, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted content terms at the tile's core positions, normalised by the whole
        picture's size: the tiles' values add up to the whole picture's."""
        total = None
        for n in self.content_layers:
            stride = layer_stride(n)
            mine = tile.core_of(feats[n], stride)
            target = self.content_targets[n][(..., *tile.core_rows_cols(stride))]
            diff = (target - mine).float()
            n_h, n_w = self.shapes[n]
            cost = (diff * diff).sum() / (4.0 * n_h * n_w * mine.shape[1])
            total = (
                cost * self.content_scale[n]
                if total is None
                else total + cost * self.content_scale[n]
            )
        assert total is not None
        return total

    def loss(
        self, feats: dict[str, torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """J and its terms from the features of `x` (one image, (1, ...) each): the part that a
        batch of jobs computes once per job after one forward pass over all of them."""
        content = weighted_sum(
            [content_cost(self.content_targets[n], feats[n]) for n in self.content_layers],
            [self.content_scale[n] for n in self.content_layers],
        )
        style = weighted_sum(
            [layer_style_cost(self.style_targets[n], feats[n]) for n in self.style_layers],
            [self.style_scale[n] for n in self.style_layers],
        )
        total = content + style
        terms = {"content": content, "style": style}
        if self.params.tv_weight > 0:
            tv = self.params.tv_weight * total_variation(x)
            total = total + tv
            terms["tv"] = tv
        terms["total"] = total
        return total, terms


class Temporal:
    """The temporal cost of a moving picture, added to J over all its frames (Ruder, Dosovitskiy
    and Brox, 2016): for each pair of neighbouring frames, the mean squared difference, where the
    content's optical flow is reliable, between a frame and the frame before it moved along that
    flow (bot/engine/flow.py), times `weight`. Each frame steps on its part of the gradient. With
    weight 0 the frames are painted independently (the baseline that flickers)."""

    def __init__(self, motion: Motion, weight: float):
        self.motion, self.weight = motion, weight

    def gradient(
        self, xs: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor] | None, torch.Tensor]:
        """Each frame's gradient of the cost (None when there is none) and its value."""
        if self.weight <= 0 or not self.motion.before:
            return None, torch.zeros(())
        moving = torch.cat([x.detach() for x in xs]).float().requires_grad_(True)
        cost = self.weight * temporal_differences(moving, self.motion).sum()
        (grad,) = torch.autograd.grad(cost, moving)
        return [grad[i : i + 1] for i in range(len(xs))], cost.detach()
