"""A job's peak device memory, estimated before it runs (pure arithmetic: no torch).

Two parts grow with the pixel count of the level being optimised:
- VGG-19's activations kept for the backward pass: measured on an H200 (torch 2.11, one job,
  5 steps, so with almost no optimiser history): 0.77 GB at 512 px, 2.6 GB at 1024, 10 GB at
  2048 in fp32 (0.69 / 2.3 / 8.8 GB in bf16), that is about 2.9 KB (bf16: 2.6 KB) per pixel.
  The CPU here measured 1.5 KB per pixel for one forward and backward pass (RSS growth).
- the optimiser's state: L-BFGS keeps `history` pairs (s, y) of the whole image in float32,
  24 bytes per pixel per pair (2.4 KB per pixel with the default 100: as much as the activations);
  Adam keeps two moments, 24 bytes per pixel.
The figures are an upper bound for the shapes members send (the longest side squared).

When a picture does not fit, `plan` first shortens the L-BFGS history (its cheapest saving), then
cuts the picture into tiles (bot/engine/tiling.py): the activations are then those of one tile,
and what grows with the whole picture is the optimiser's state, the image, its gradient, the
content targets and the style image (TILED_STATE_PER_PIXEL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.engine.params import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, LAYER_NAMES, MAX_SIZE

MODEL_BYTES = 100 * 2**20  # VGG-19's convolution weights (80 MB in fp32) and workspaces
ACTIVATION_BYTES_PER_PIXEL = {"fp32": 3_000, "tf32": 3_000, "bf16": 2_700}
PER_PIXEL_STATE = 48  # the image, its gradient and the previous gradient (float32)
# tiled, on top of PER_PIXEL_STATE: the accumulated gradient (12), relu4_2's content target
# (512 channels at 1/64 of the pixels, float32: 32), the content and style images (24), and room
# for one more copy of the image (12)
TILED_STATE_PER_PIXEL = PER_PIXEL_STATE + 80
LBFGS_HISTORY = 100  # the default history; shorter ones are planned for large pictures
HISTORIES = (100, 50, 20, 10, 5)
UNTILED_MIN_HISTORY = 20  # below this, tiling with a longer history comes first
ALIGN = 16  # conv5's stride: tile cores and origins on this grid keep every layer aligned
MIN_TILE = 128  # smaller cores spend most of their time on margins


def tile_margin(layers: Sequence[str]) -> int:
    """The margin (on the ALIGN grid) that covers the receptive field of the deepest of `layers`
    beyond a core's edge: 80 px for relu5_1. With it a core's activations are the whole
    picture's, so a tiled step takes the whole picture's gradient (bot/engine/tiling.py)."""
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    field, stride = 1, 1
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("conv"):
            field += 2 * stride  # 3x3, padding 1
        elif name.startswith("pool"):
            field += stride  # 2x2, stride 2
            stride *= 2
    reach = (field - stride) // 2 + 1
    return -(-reach // ALIGN) * ALIGN


TILE_MARGIN = tile_margin((*DEFAULT_STYLE_LAYERS, *DEFAULT_CONTENT_LAYERS))


@dataclass(frozen=True)
class MemoryPlan:
    """How a job runs within a memory budget."""

    bytes: int  # the estimated peak
    history: int  # L-BFGS pairs kept (unused by Adam)
    tile: int | None = None  # tile core side in px; None: the whole picture at once
    chunk: int = 1  # a moving picture's frames per VGG-19 pass (plan_clip)


def optimiser_bytes_per_pixel(optimizer: str, history: int) -> int:
    return 24 * history if optimizer == "lbfgs" else 24


def job_bytes(pixels: int, *, optimizer: str, history: int, precision: str = "fp32") -> int:
    """The memory one job adds on a device that already holds the model."""
    per_pixel = (
        ACTIVATION_BYTES_PER_PIXEL.get(precision, 3_000)
        + optimiser_bytes_per_pixel(optimizer, history)
        + PER_PIXEL_STATE
    )
    return pixels * per_pixel


def largest_size(
    budget: int,
    width: int,
    height: int,
    *,
    optimizer: str,
    precision: str = "fp32",
    margin: int = TILE_MARGIN,
) -> int:
    """The largest longest side (a multiple of 64, at most MAX_SIZE) at which a picture of this
    aspect ratio can run in `budget` bytes, tiled if need be; 0 if not even 64 px can."""
    long, short = max(width, height), min(width, height)

    def can(side: int) -> bool:
        other = max(1, round(side * short / long))
        found = plan(side, other, budget, optimizer=optimizer, precision=precision, margin=margin)
        return found is not None

    side = 0
    while side < MAX_SIZE and can(side + 64):
        side += 64
    return side


def tiled_job_bytes(
    pixels: int, tile: int, margin: int, *, optimizer: str, history: int, precision: str = "fp32"
) -> int:
    """The memory of a tiled job: one tile's activations plus the state of the whole picture."""
    region = (tile + 2 * margin) ** 2
    return region * ACTIVATION_BYTES_PER_PIXEL.get(precision, 3_000) + pixels * (
        optimiser_bytes_per_pixel(optimizer, history) + TILED_STATE_PER_PIXEL
    )


def plan(
    width: int,
    height: int,
    budget: int | None,
    *,
    optimizer: str,
    precision: str = "fp32",
    tile: int | None = None,
    margin: int = TILE_MARGIN,
) -> MemoryPlan | None:
    """How a width x height job fits in `budget` bytes (None: no limit), or None if it cannot.

    In order: the whole picture with the longest history that fits (down to
    UNTILED_MIN_HISTORY), then tiles as large as fit (a multiple of 64 px, at least MIN_TILE)
    with the longest history that fits; `margin` is the tiles' (see tile_margin). `tile` forces
    that tile size (the history still shrinks to fit)."""
    pixels = width * height
    histories = HISTORIES if optimizer == "lbfgs" else (LBFGS_HISTORY,)

    def fits(need: int) -> bool:
        return budget is None or need <= budget

    if tile is None or tile >= max(width, height):
        for history in histories:
            if optimizer == "lbfgs" and history < UNTILED_MIN_HISTORY and tile is None:
                break
            need = job_bytes(pixels, optimizer=optimizer, history=history, precision=precision)
            if fits(need):
                return MemoryPlan(need, history)
        if tile is not None:
            return None
    for history in histories:
        sides = (
            [tile] if tile is not None else range(max(width, height) // 64 * 64, MIN_TILE - 1, -64)
        )
        for side in sides:
            need = tiled_job_bytes(
                pixels, side, margin, optimizer=optimizer, history=history, precision=precision
            )
            if fits(need):
                return MemoryPlan(need, history, side)
    return None


CLIP_CHUNK = 16  # frames per pass at most on a GPU: a batch of 16 keeps an H200 full
# (docs/executor.md); on a CPU one frame a pass: measured on a 2-core Xeon, 8 frames of 256 px
# a pass took 730 ms a frame-step, one a pass 436 ms, a still 403-447 ms (docs/clips.md)


def clip_chunk(device_type: str) -> int:
    """The most frames of a clip per VGG-19 pass on this kind of device."""
    return CLIP_CHUNK if device_type == "cuda" else 1


def _plan_clip(
    params, width: int, height: int, frames: int, budget: int | None, precision: str, where: str,
    max_chunk: int,
) -> MemoryPlan:  # fmt: skip
    """The memory plan of a moving picture: every frame's optimiser state held at once, and the
    activations of `chunk` frames per pass, as many as fit (at most `max_chunk`: `clip_chunk`
    of the device). Clips are not tiled: one that does not fit with one frame per pass and a
    short history is refused, with what to change."""
    pixels = width * height
    histories = HISTORIES if params.optimizer == "lbfgs" else (LBFGS_HISTORY,)
    activations = ACTIVATION_BYTES_PER_PIXEL.get(precision, 3_000) * pixels
    for history in histories:
        state = (
            frames
            * pixels
            * (optimiser_bytes_per_pixel(params.optimizer, history) + PER_PIXEL_STATE)
        )
        for chunk in range(min(frames, max_chunk), 0, -1):
            need = state + chunk * activations
            if budget is None or need <= budget:
                return MemoryPlan(need, history, None, chunk)
    assert budget is not None
    raise DoesNotFit(
        f"{frames} frames of {width}x{height} do not fit in the {size_text(budget)} this {where} "
        "allows: send fewer frames (a shorter clip) or ask for a smaller size"
    )  # fmt: skip


class DoesNotFit(ValueError):
    """A job that fits in no way; the message names the largest size that does."""


def plan_job(
    params,
    width: int,
    height: int,
    budget: int | None,
    *,
    frames: int = 1,
    precision: str = "fp32",
    tile: int | None = None,
    where: str = "device",
    max_chunk: int = CLIP_CHUNK,
) -> MemoryPlan:
    """The one memory plan of a job of `frames` frames (its StyleParams at its output size)
    within `budget` bytes: its optimiser, its layers' tile margin, the precision it runs at. A
    still may take a shorter history or tiles; a moving picture holds every frame's optimiser
    state and passes up to `max_chunk` frames at once (`clip_chunk` of the device), untiled.
    Raises DoesNotFit, naming what to change on this `where` ("GPU", "worker", "device"), when
    nothing fits; with `tile` forced, when tiles of that size do not fit."""
    if frames > 1:
        return _plan_clip(params, width, height, frames, budget, precision, where, max_chunk)
    margin = tile_margin((*params.style_layers, *params.content_layers))
    found = plan(
        width,
        height,
        budget,
        optimizer=params.optimizer,
        precision=precision,
        tile=tile,
        margin=margin,
    )
    if found is not None:
        return found
    assert budget is not None  # without a limit everything fits
    if tile is not None:
        raise DoesNotFit(f"tiles of {tile} px do not fit in {size_text(budget)}")
    fits = largest_size(
        budget, width, height, optimizer=params.optimizer, precision=precision, margin=margin
    )
    need = job_bytes(width * height, optimizer=params.optimizer, history=5, precision=precision)
    advice = f"the largest size that fits is {fits} px" if fits else "no size fits"
    raise DoesNotFit(
        f"a {width}x{height} picture does not fit in the {size_text(budget)} this {where} "
        f"allows, not even in tiles (whole, it needs about {size_text(need)}): {advice}"
    )


def size_text(nbytes: int) -> str:
    """Bytes as a person reads them: GB with one decimal, MB below 0.1 GB."""
    if nbytes >= 0.1 * 2**30:
        return f"{nbytes / 2**30:.1f} GB"
    return f"{max(1, round(nbytes / 2**20))} MB"
