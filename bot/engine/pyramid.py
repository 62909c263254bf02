"""The coarse-to-fine pyramid: the size of each level, each level's content and style targets
(colour mode applied), the first image, and the optimised pixels turned back into a picture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from bot.engine import colour
from bot.engine.params import START_NOISE_CELLS, StyleParams, fit_size


def pyramid_sizes(max_side: int, levels: int) -> list[int]:
    """Longest sides from coarsest to finest; the last is `max_side`."""
    return [max(16, max_side >> (levels - 1 - i)) for i in range(levels)]


def style_dims(size: tuple[int, int], longest: int, min_side: int) -> tuple[int, int]:
    width, height = fit_size(*size, longest)
    if min(width, height) < min_side:  # a thin style image is enlarged until the layers fit
        scale = min_side / min(width, height)
        width, height = max(min_side, round(width * scale)), max(min_side, round(height * scale))
    return width, height


def prepare(image: Image.Image, dims: tuple[int, int]) -> torch.Tensor:
    return colour.to_tensor(image.resize(dims, Image.Resampling.LANCZOS))


def level_targets(
    content: Image.Image,
    styles: Sequence[Image.Image],
    params: StyleParams,
    dims: tuple[int, int],
    min_side: int,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Content and style tensors (on the CPU) for a level of size `dims`, colour mode applied."""
    content_t = prepare(content, dims)
    style_side = max(16, round(max(dims) * params.style_scale))
    style_ts = [prepare(s, style_dims(s.size, style_side, min_side)) for s in styles]
    if params.preserve_colors == "luminance":
        style_ts = [colour.match_luminance(s, content_t) for s in style_ts]
        content_t = colour.luminance(content_t)
    elif params.preserve_colors == "match":
        style_ts = [colour.match_colors(s, content_t) for s in style_ts]
    return content_t, style_ts


def initial_image(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: StyleParams,
    generator: torch.Generator,
) -> torch.Tensor:
    """The first level's start, its randomness drawn from `generator` (seeded with the job's
    seed): the same seed, the same start."""
    if params.init in ("content", "recolored"):
        start = content
        if params.init == "recolored":  # the content in the colours of all the style images
            pooled = torch.cat([s.reshape(3, -1) for s in styles], dim=1)
            start = colour.match_colors(content, pooled.reshape(1, 3, 1, -1))
        if not params.start_noise:
            return start.clone()
        noise = smooth_noise(content.shape, generator).to(content)
        return (start + params.start_noise * noise).clamp(0, 1)
    noise = torch.rand(content.shape, generator=generator).to(content)
    if params.init == "noise":
        return noise
    # "content+noise", as in the seed: a noisy copy of the content image
    return params.noise_ratio * noise + (1.0 - params.noise_ratio) * content


def smooth_noise(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Noise of cells drawn in [-1, 1] that varies over START_NOISE_CELLS cells on the long side (bicubic between
    them), on the CPU: it moves where colours and strokes settle without leaving grain, the same
    on every machine for one seed. Departs from the seed document, whose noise start is white."""
    height, width = shape[-2:]
    scale = START_NOISE_CELLS / max(height, width)
    cells = (max(2, round(height * scale)), max(2, round(width * scale)))
    coarse = torch.rand((*shape[:-2], *cells), generator=generator) * 2 - 1
    # bicubic overshoots the cells' values by up to about a third near a sharp change
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)


def finish_image(
    x: torch.Tensor, params: StyleParams, colour_reference: torch.Tensor
) -> Image.Image:
    """The optimised pixels as a picture (the content's colours put back for `luminance`)."""
    result = x.detach().float().cpu().clamp(0, 1)
    if params.preserve_colors == "luminance":
        if colour_reference.shape[-2:] != result.shape[-2:]:  # a preview at a coarse pyramid level
            colour_reference = F.interpolate(
                colour_reference, size=result.shape[-2:], mode="bilinear", align_corners=False
            )
        result = colour.combine_luminance(result, colour_reference)
    return colour.to_image(result)
