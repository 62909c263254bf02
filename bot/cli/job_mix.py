"""Named mixes of members' pictures for `stylebot bench-executor --mix`: which shapes and sizes
members send, and how often, drawn in a seeded order so that two runs send the same jobs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.cli import UsageError


@dataclass(frozen=True)
class MixedJob:
    width: int  # the content as uploaded
    height: int
    size: int  # the job's size (longest side of the result)


# (width, height as uploaded, weight): phone photos both ways, screens and video frames both
# ways, squares, camera 3:2, phone screenshots, and odd crops
MEMBER_SHAPES = (
    (4032, 3024, 25),
    (3024, 4032, 25),
    (1920, 1080, 10),
    (1080, 1920, 8),
    (1080, 1080, 12),
    (1200, 800, 6),
    (1170, 2532, 6),
    (1000, 900, 4),
    (700, 500, 4),
)
MIXES: dict[str, tuple[tuple[tuple[int, int, int], ...], tuple[tuple[int, int], ...]]] = {
    # shapes, (size, weight): the default job mostly, some small and some large
    "members": (MEMBER_SHAPES, ((512, 85), (256, 10), (1024, 5))),
    # the same shapes, every job the default size: what buckets alone do
    "shapes": (MEMBER_SHAPES, ((512, 1),)),
    # one shape and size: the best case of batching, for comparison
    "uniform": (((4032, 3024, 1),), ((512, 1),)),
}
UPLOAD_SCALE = 1.5  # an upload's longest side against its job's size (decoding costs its pixels)
DEFAULT_SIZE = 512  # the mixes' sizes are for jobs of this default size


def draw(name: str, jobs: int, seed: int = 0, default_size: int = DEFAULT_SIZE) -> list[MixedJob]:
    """`jobs` jobs of the mix `name`, in a seeded order; each upload scaled to UPLOAD_SCALE times
    its job's size (its shape kept). `default_size`: the mix's sizes scaled so that its default
    jobs are this size (small runs on a CPU)."""
    if name not in MIXES:
        raise UsageError(f"--mix takes one of {', '.join(MIXES)}, not {name!r}")
    shapes, sizes = MIXES[name]
    chance = random.Random(seed)
    drawn_shapes = chance.choices(shapes, weights=[w for *_, w in shapes], k=jobs)
    drawn_sizes = chance.choices(
        [s for s, _ in scaled_sizes(sizes, default_size)], weights=[w for _, w in sizes], k=jobs
    )
    mixed = []
    for (width, height, _), size in zip(drawn_shapes, drawn_sizes, strict=True):
        scale = UPLOAD_SCALE * size / max(width, height)
        mixed.append(MixedJob(round(width * scale), round(height * scale), size))
    return mixed


def scaled_sizes(sizes: tuple[tuple[int, int], ...], default_size: int) -> list[tuple[int, int]]:
    return [(max(16, round(s * default_size / DEFAULT_SIZE)), w) for s, w in sizes]


def describe(name: str, default_size: int = DEFAULT_SIZE) -> str:
    """One line of what the mix holds, for the report."""
    shapes, sizes = MIXES[name]
    sizes = tuple(scaled_sizes(sizes, default_size))
    total = sum(w for *_, w in shapes)
    parts = [f"{w}x{h} {100 * n / total:.0f}%" for w, h, n in shapes]
    size_total = sum(n for _, n in sizes)
    return f"{', '.join(parts)}; sizes " + ", ".join(
        f"{s} px {100 * n / size_total:.0f}%" for s, n in sizes
    )
