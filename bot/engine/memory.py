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
"""

from __future__ import annotations

MODEL_BYTES = 100 * 2**20  # VGG-19's convolution weights (80 MB in fp32) and workspaces
ACTIVATION_BYTES_PER_PIXEL = {"fp32": 3_000, "tf32": 3_000, "bf16": 2_700}
PER_PIXEL_STATE = 48  # the image, its gradient and the previous gradient (float32)


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
    budget: int, width: int, height: int, *, optimizer: str, history: int, precision: str = "fp32"
) -> int:
    """The largest longest side (a multiple of 64) at which a picture of this aspect ratio fits
    in `budget` bytes; 0 if not even 64 px does."""
    long, short = max(width, height), min(width, height)

    def need(side: int) -> int:
        pixels = side * max(1, round(side * short / long))
        return job_bytes(pixels, optimizer=optimizer, history=history, precision=precision)

    side = 0
    while need(side + 64) <= budget and side < 65_536:
        side += 64
    return side
