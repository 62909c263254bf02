"""Shape buckets: a few canvas shapes per size, so that most jobs of one size share a VGG-19 pass.

A batch steps together only jobs whose pictures have the same shape (painting.step_together), and
members send pictures of every shape: without buckets a batch of 16 mixed phone photos is a
handful of batches of two or three. With buckets a still is painted on the canvas of its size
whose aspect ratio is nearest its own, when that is within MAX_STRETCH, and its result is
resized back to the member's exact shape: the longest side stays the job's size (and so the
scale of the style's strokes), the short side is one of a few multiples of `side_step`.

Pure arithmetic, no torch: the worker, the benchmarks and the tests ask the same rule.
"""

from __future__ import annotations

import math

# width:height of the buckets (each also turned upright): square, 5:4 and 4:3 (phone photos,
# prints), 3:2 (cameras), 16:9 (screens, video frames), 2:1 (panoramas), 19.5:9 (phone
# screenshots)
BUCKET_RATIOS = ((1, 1), (5, 4), (4, 3), (3, 2), (16, 9), (2, 1), (39, 18))
# a bucket's short side is a multiple of a sixteenth of its long side (32 px at 512, 64 px at
# 1024 and above), within these bounds: VGG-19 halves it four times
MIN_SIDE_STEP, MAX_SIDE_STEP = 8, 64
# the most a picture's short side is stretched or squeezed to fit its bucket; beyond, the job
# paints at its own shape (between two buckets the stretch is at most about 6 %, so only shapes
# outside 1:1 .. 2:1 are left alone)
MAX_STRETCH = 0.07


def side_step(long_side: int) -> int:
    """The multiple a bucket's short side is of, for pictures whose longest side is this."""
    return min(MAX_SIDE_STEP, max(MIN_SIDE_STEP, long_side // 16 // 8 * 8))


def bucket_sides(long_side: int) -> list[int]:
    """The short sides of the buckets of pictures whose longest side is `long_side`."""
    step = side_step(long_side)
    sides = {max(step, round(long_side * b / a / step) * step) for a, b in BUCKET_RATIOS}
    return sorted(s for s in sides if s <= long_side)


def canvas(width: int, height: int) -> tuple[int, int]:
    """The shape a still of `width` x `height` (already fitted to its job's size) is painted at:
    its bucket's, or its own when no bucket is within MAX_STRETCH (or when its own short side is
    already a bucket's)."""
    long_side, short_side = max(width, height), min(width, height)
    nearest = min(bucket_sides(long_side), key=lambda s: abs(math.log(s / short_side)))
    if abs(nearest / short_side - 1) > MAX_STRETCH:
        return width, height
    return (long_side, nearest) if width >= height else (nearest, long_side)


def canvas_for(width: int, height: int, frames: int, enabled: bool) -> tuple[int, int]:
    """The shape a job is painted at: a still's bucket where buckets are `enabled` (a worker
    that batches), else its own (a moving picture's frames are a batch of their own)."""
    return canvas(width, height) if enabled and frames == 1 else (width, height)
