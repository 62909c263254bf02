"""Every engine parameter and its default, in one place.

The command line, the worker and the Discord settings all read their defaults from here.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# The choices, each listed once. Members are str (StrEnum), so "lbfgs" == Optimizer.lbfgs; the
# slash commands take these types directly, and Discord shows the member names, so they are
# written as members type them.


class Optimizer(StrEnum):
    lbfgs = "lbfgs"
    adam = "adam"


class Init(StrEnum):
    content = "content"
    recolored = "recolored"  # the content with the style images' colour mean and covariance
    noise = "noise"
    content_noise = "content+noise"


class ColorMode(StrEnum):
    none = "none"
    luminance = "luminance"
    match = "match"


class Pooling(StrEnum):
    max = "max"
    avg = "avg"


class Precision(StrEnum):
    """auto: TF32 on CUDA; on a CPU bf16 where measured clearly faster here, else fp32
    (bot/engine/cpu_precision.py); fp32 elsewhere."""

    auto = "auto"
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"


OPTIMIZERS: tuple[str, ...] = tuple(Optimizer)
INITS: tuple[str, ...] = tuple(Init)
COLOR_MODES: tuple[str, ...] = tuple(ColorMode)
POOLINGS: tuple[str, ...] = tuple(Pooling)
PRECISIONS: tuple[str, ...] = tuple(Precision)

VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block in VGG-19


def vgg19_convolutions() -> list[tuple[int, int, int, int]]:
    """(block, conv, in channels, out channels) of each of VGG-19's convolutions, in order: the
    one statement of the network's shape (the model is built from it, a weights file checked
    against it before anything in it is expanded)."""
    convolutions, channels = [], 3
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        out = min(64 * 2 ** (block - 1), 512)
        for conv in range(1, convs + 1):
            convolutions.append((block, conv, channels, out))
            channels = out
    return convolutions


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


# VGG-19's layers in torchvision's `features` order: plain data, so that validating parameters
# needs no torch.
LAYER_NAMES: tuple[str, ...] = _layer_names()

DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)

# Strength mode: how much more the (normalised) style term counts than the (normalised)
# content term at strength 1.0. See `StyleParams.strength` and README.md.
STRENGTH_SCALE = 10.0

WEIGHTS_ENV = "STYLEBOT_VGG19_WEIGHTS"  # the variable that names the VGG-19 weights
ORIGINAL_WEIGHTS = "original"  # the bundled original VGG-19, the default (bot/engine/weights.py)

MAX_SIZE = 4096
# The one set of bounds every job's parameters keep (StyleParams.validate); a Discord server's
# members get narrower ones (bot/guild_policy.py narrows these, never repeats them)
MIN_SIZE = 16  # the smallest output side the engine paints
MAX_STRENGTH = 100.0
MIN_CLIP_SECONDS = 0.5  # a server's clip length, at least
STYLE_SCALE_RANGE = (0.05, 4.0)
MAX_SEED = 2**63 - 1  # what the engine takes (torch's generator)
# the seeds the engine draws and a member may type: every seed a result reports can be typed back
MAX_TYPED_SEED = 2**31 - 1


def draw_seed() -> int:
    """A new seed, one a member can type back: where a job is settled (the bot's params_for,
    the command line), never in the worker, so that the row and the caption keep the seed that
    painted the picture."""
    return random.randint(0, MAX_TYPED_SEED)


# the temporal cost's weight by default: measured in docs/clips.md (half the flicker of frames
# painted alone, at their style and content distances)
DEFAULT_TEMPORAL_WEIGHT = 20.0
MAX_CLIP_FRAMES = 300  # a moving picture's frames, at most (a server may allow fewer)
MAX_CLIP_SECONDS = 60.0
MAX_STEPS = 5000
# Coarse-to-fine by default (pyramid_levels 0) from this size up, with levels down to about
# AUTO_PYRAMID_COARSEST px: see docs/engine.md ("Time to quality") for the figures behind both.
AUTO_PYRAMID_FROM = 512
AUTO_PYRAMID_COARSEST = 256
# Before issue 29, one level up to 512 px: the schedule whose look strength 1 keeps meaning
REFERENCE_PYRAMID_ABOVE = 512

# The schedule of a job that does not name its steps (steps 0): DEFAULT_STEPS at the final size,
# or, where the automatic levels add a coarse level to the reference schedule (512 px: 256 then
# 512 px), FAST_SCHEDULE_WORK full-size steps' work spread evenly over the levels (2 x 80).
DEFAULT_STEPS = 300
FAST_SCHEDULE_WORK = 100
# What a coarse level added to the reference schedule does to the balance: it lands about 20 %
# closer to the style, so each such level multiplies the style weight by this (measured at 512 px,
# 2 x 80 steps, six pairs: docs/engine.md); strength 1 keeps meaning the reference's look
COARSE_LEVEL_STRENGTH = 0.62
PREVIEWS_PER_RUN = 10  # a member's job shows a preview every tenth of its final steps


# What a seed varies (issue 48): a smooth noise added to the content start, so that another seed
# moves where the style's colours and strokes settle, at the same quality. Measured on the real
# VGG-19 (docs/engine.md, "What the seed varies"): 0.15 at 256 px cost 1-2 % in both distances, the
# seeds within 1 % of each other, and the pictures differed at a glance (a per-pixel noise moved
# only the finest strokes, and cost 3-8 % in style). START_NOISE_CELLS: its scale, in cells on
# the picture's long side, whatever its size.
DEFAULT_START_NOISE = 0.2
START_NOISE_CELLS = 16

# A pyramid level stops early when J fell by less than `tolerance` over this many of its steps.
CONVERGENCE_WINDOW = 10


def describe_schedule(params: StyleParams) -> str:
    """The steps of a run for a person: "100 steps", or "100 steps after 1 coarser level of 60"."""
    coarser = params.levels - 1
    steps = params.final_steps
    if not coarser:
        return f"{steps} steps"
    each = params.level_steps(params.levels)[0]
    return f"{steps} steps after {coarser} coarser level{'s' * (coarser > 1)} of {each}"


def _halvings(size: int) -> int:
    """Levels whose coarsest is at least AUTO_PYRAMID_COARSEST px (at most 5)."""
    levels = 1
    while levels < 5 and size >> levels >= AUTO_PYRAMID_COARSEST:
        levels += 1
    return levels


def auto_pyramid_levels(size: int) -> int:
    """Levels for `size` when none are asked for: 1 below AUTO_PYRAMID_FROM px, then as many
    halvings as keep the coarsest level at least AUTO_PYRAMID_COARSEST px (512 px: 2 levels,
    1024 px: 3)."""
    return _halvings(size) if size >= AUTO_PYRAMID_FROM else 1


def reference_levels(size: int) -> int:
    """The levels the reference schedule had at `size` (one level up to 512 px): what strength 1
    means is that schedule's look."""
    return _halvings(size) if size > REFERENCE_PYRAMID_ABOVE else 1


class InvalidParams(ValueError):
    """A parameter is out of range; the message says which and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class StyleParams:
    """What one style-transfer run does. Immutable; use `replace()` to derive another.

    Weights have two modes:
      * strength mode (default): `content_weight` and `style_weight` are None. Every content and
        style layer term is divided by its value for an all-zero image (so it is a relative
        squared error, independent of the scale of the loaded VGG-19 weights), and
        J = J_content_rel + strength * STRENGTH_SCALE * J_style_rel.
      * raw mode: `content_weight` (alpha) and `style_weight` (beta) both given: the seed's
        J = alpha * J_content + beta * J_style with the unnormalised terms.
    """

    size: int = 512  # longest side of the output, pixels; the content's aspect ratio is kept
    steps: int = 0  # optimiser steps at the final size; 0 = the size's schedule (final_steps)
    coarse_steps: int = 0  # steps of each coarser pyramid level; 0 = as many as `steps`
    strength: float = 1.0  # style strength in strength mode; 0 = content only
    content_weight: float | None = None  # alpha, raw mode
    style_weight: float | None = None  # beta, raw mode
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None  # lambda_l; None = equal, summing to 1
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    tv_weight: float = 0.0  # total-variation smoothing weight (on pixel values in [0, 1])
    optimizer: Optimizer = Optimizer.lbfgs
    learning_rate: float | None = None  # None = the optimiser's default (see DEFAULT_LR)
    init: Init = Init.content
    noise_ratio: float = 0.6  # for init "content+noise": share of noise, as in the seed
    # for init "content" and "recolored": a smooth noise of this amplitude (in [0, 1] pixel
    # values, START_NOISE_CELLS cells on the long side) added to the start, drawn from the seed:
    # what makes another seed another picture. 0 = the start itself (every seed paints the same)
    start_noise: float = DEFAULT_START_NOISE
    seed: int | None = None  # the start's noise: the same seed paints the same picture again
    # a level stops early when J fell by less than this fraction over its last CONVERGENCE_WINDOW
    # steps ("converged at step N"); 0 = every level runs all its steps
    tolerance: float = 0.0
    style_blend: tuple[float, ...] | None = None  # one weight per style image; None = equal
    style_scale: float = 1.0  # style images are resized to style_scale * size (longest side)
    preserve_colors: ColorMode = ColorMode.none
    pooling: Pooling = Pooling.max
    pyramid_levels: int = 0  # coarse-to-fine levels, each half the next; 0 = auto_pyramid_levels
    preview_every: int = 0  # send a preview image every K steps; 0 = never
    # moving pictures: the weight of the temporal cost that keeps each frame where the one before
    # it moves to (bot/engine/painting.py); 0 = every frame painted alone (flickers)
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    # moving pictures: how much of one is painted (bot/media/clips.py): a longer clip is cut to
    # its first clip_seconds, then its frame rate lowered to at most clip_frames frames; it is
    # painted at most clip_size px on its longest side (a server's limits)
    clip_frames: int = 48
    clip_seconds: float = 8.0
    clip_size: int = 384

    def replace(self, **changes: object) -> StyleParams:
        return dataclasses.replace(self, **changes)

    @property
    def raw_weights(self) -> bool:
        return self.content_weight is not None or self.style_weight is not None

    @property
    def layer_weights(self) -> tuple[float, ...]:
        if self.style_layer_weights is not None:
            return self.style_layer_weights
        return tuple(1.0 / len(self.style_layers) for _ in self.style_layers)

    def blend_weights(self, n_styles: int) -> tuple[float, ...]:
        """Blend weights for `n_styles` style images, normalised to sum to 1."""
        weights = self.style_blend if self.style_blend is not None else (1.0,) * n_styles
        if len(weights) != n_styles:
            raise InvalidParams(
                f"style blend has {len(weights)} weights but there are {n_styles} style images"
            )
        total = sum(weights)
        return tuple(w / total for w in weights)

    @property
    def levels(self) -> int:
        """The pyramid levels this run has (pyramid_levels, or the automatic choice for 0)."""
        return self.pyramid_levels or auto_pyramid_levels(self.size)

    @property
    def final_steps(self) -> int:
        """Steps at the final size: `steps`, or for 0 the size's schedule: DEFAULT_STEPS, or
        FAST_SCHEDULE_WORK's worth over every level where coarse levels were added to the
        reference schedule (512 px: 2 levels of 80)."""
        if self.steps:
            return self.steps
        if self.levels <= reference_levels(self.size):
            return DEFAULT_STEPS
        work_of_a_step = sum(4.0**-i for i in range(self.levels))  # a coarse step: its pixels
        return max(1, round(FAST_SCHEDULE_WORK / work_of_a_step))

    @property
    def style_balance(self) -> float:
        """How much more the normalised style term counts than the content term at strength 1,
        on this run's schedule: STRENGTH_SCALE, times COARSE_LEVEL_STRENGTH for each coarse
        level beyond the reference schedule at this size, so that a strength keeps its look
        whatever the schedule (docs/engine.md, "Strength on every schedule")."""
        added = max(0, self.levels - reference_levels(self.size))
        return STRENGTH_SCALE * COARSE_LEVEL_STRENGTH**added

    def with_previews(self) -> StyleParams:
        """The same run with a preview every PREVIEWS_PER_RUN-th of its final steps."""
        return self.replace(preview_every=max(1, self.final_steps // PREVIEWS_PER_RUN))

    def level_steps(self, levels: int) -> list[int]:
        """Steps of each of `levels` pyramid levels, coarsest first."""
        final = self.final_steps
        return [self.coarse_steps or final] * (levels - 1) + [final]

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.optimizer]

    # a long function (over 60 lines): one rule per line, the whole list read at once
    def validate(self) -> StyleParams:
        """Raise InvalidParams with a message a person understands; return self when fine."""

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InvalidParams(message)

        for name, value in self._numbers():
            need(math.isfinite(value), f"{name} must be a finite number, not {value}")
        need(
            MIN_SIZE <= self.size <= MAX_SIZE,
            f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels",
        )
        need(
            0 <= self.steps <= MAX_STEPS,
            f"steps must be between 1 and {MAX_STEPS} (0: the size's schedule)",
        )
        need(
            0 <= self.coarse_steps <= MAX_STEPS,
            f"coarse steps must be between 1 and {MAX_STEPS} (0: as many as steps)",
        )
        need(0 <= self.strength <= MAX_STRENGTH, f"strength must be between 0 and {MAX_STRENGTH:g}")
        need(
            (self.content_weight is None) == (self.style_weight is None),
            "give both the content weight (alpha) and the style weight (beta), or neither",
        )
        for name, w in (
            ("content weight", self.content_weight),
            ("style weight", self.style_weight),
        ):
            need(w is None or w >= 0, f"{name} must be 0 or more")
        need(len(self.style_layers) > 0, "at least one style layer is needed")
        need(len(self.content_layers) > 0, "at least one content layer is needed")
        for layer in (*self.style_layers, *self.content_layers):
            need(
                layer in LAYER_NAMES,
                f"unknown layer {layer!r}; layers are {', '.join(LAYER_NAMES)}",
            )
        if self.style_layer_weights is not None:
            need(
                len(self.style_layer_weights) == len(self.style_layers),
                f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers",
            )
            need(
                all(w >= 0 for w in self.style_layer_weights) and sum(self.style_layer_weights) > 0,
                "style layer weights must be 0 or more and not all 0",
            )
        need(self.tv_weight >= 0, "tv weight must be 0 or more")
        need(0 <= self.temporal_weight <= 1e6, "temporal weight must be between 0 and 1000000")
        need(
            1 <= self.clip_frames <= MAX_CLIP_FRAMES,
            f"clip frames must be between 1 and {MAX_CLIP_FRAMES}",
        )
        need(
            MIN_CLIP_SECONDS <= self.clip_seconds <= MAX_CLIP_SECONDS,
            f"clip seconds must be between {MIN_CLIP_SECONDS:g} and {MAX_CLIP_SECONDS:g}",
        )
        need(
            MIN_SIZE <= self.clip_size <= MAX_SIZE,
            f"the clip size must be between {MIN_SIZE} and {MAX_SIZE} pixels",
        )
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        need(self.learning_rate is None or self.learning_rate > 0, "learning rate must be above 0")
        need(self.init in INITS, f"init must be one of {', '.join(INITS)}")
        need(0 <= self.noise_ratio <= 1, "noise ratio must be between 0 and 1")
        need(0 <= self.start_noise <= 1, "start noise must be between 0 and 1")
        need(0 <= self.tolerance < 1, "tolerance must be at least 0 and below 1")
        need(
            self.style_blend is None or all(w >= 0 for w in self.style_blend),
            "style blend weights must be 0 or more",
        )
        need(
            self.style_blend is None or sum(self.style_blend) > 0,
            "style blend weights must not all be 0",
        )
        low, high = STYLE_SCALE_RANGE
        need(low <= self.style_scale <= high, f"style scale must be between {low:g} and {high:g}")
        need(
            self.preserve_colors in COLOR_MODES,
            f"preserve colors must be one of {', '.join(COLOR_MODES)}",
        )
        need(self.pooling in POOLINGS, f"pooling must be one of {', '.join(POOLINGS)}")
        need(0 <= self.pyramid_levels <= 5, "pyramid levels must be between 1 and 5 (0: automatic)")
        need(self.size >> (self.levels - 1) >= 16, "too many pyramid levels for this size")
        need(self.preview_every >= 0, "preview every must be 0 or more")
        need(
            self.seed is None or 0 <= self.seed <= MAX_SEED,
            "the seed must be between 0 and 2^63 - 1",
        )
        return self

    def _numbers(self) -> list[tuple[str, float]]:
        """Every weight, strength and rate, named as a person would name it."""
        numbers: list[tuple[str, float]] = [
            ("strength", self.strength),
            ("tv weight", self.tv_weight),
            ("temporal weight", self.temporal_weight),
            ("clip seconds", self.clip_seconds),
            ("noise ratio", self.noise_ratio),
            ("start noise", self.start_noise),
            ("tolerance", self.tolerance),
            ("style scale", self.style_scale),
        ]
        for name, value in (
            ("content weight", self.content_weight),
            ("style weight", self.style_weight),
            ("learning rate", self.learning_rate),
        ):
            if value is not None:
                numbers.append((name, value))
        numbers += [("style layer weight", w) for w in self.style_layer_weights or ()]
        numbers += [("style blend weight", w) for w in self.style_blend or ()]
        return numbers

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> StyleParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidParams(f"unknown parameters: {', '.join(sorted(unknown))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)  # type: ignore[arg-type]


# Pixel values are in [0, 1] (jcjohnson/neural-style uses 10 on 0-255 values, i.e. ~0.04 here).
DEFAULT_LR: dict[str, float] = {"lbfgs": 1.0, "adam": 0.02}


# The one list of image formats taken (Pillow's names), with their MIME types.
IMAGE_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
IMAGE_TYPES: frozenset[str] = frozenset(IMAGE_FORMATS.values())  # the MIME types of IMAGE_FORMATS
# the file name endings of IMAGE_FORMATS (for folders of pictures)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ending
    for fmt in IMAGE_FORMATS
    for ending in {"JPEG": (".jpg", ".jpeg"), "TIFF": (".tif", ".tiff")}.get(
        fmt, (f".{fmt.lower()}",)
    )
)
MAX_ASPECT = 32  # the longest side may be at most this many times the shortest


@dataclass(frozen=True)
class ImageLimits:
    """What the image decoder accepts."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000
    # what reading one moving picture may cost: its frames x the canvas they are decoded on, all
    # frames together, in video pixels (an animation's count ANIMATION_PIXEL_COST times: see
    # clip_header.py); about 1-3 s of one core. A clip over it is cut to its first frames.
    max_clip_pixels: int = 1_000_000_000
    allowed_formats: tuple[str, ...] = field(default=tuple(IMAGE_FORMATS))

    def formats_text(self) -> str:
        return ", ".join("WebP" if f == "WEBP" else f for f in self.allowed_formats)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) scaled so the longest side is `max_side`, aspect ratio kept, each side >= 1."""
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_thick_enough(params: StyleParams, width: int, height: int, what: str) -> None:
    """InvalidParams when a picture of `width` x `height` (`what`: how a message names it),
    painted at `params.size`, is too thin for the job's layers: the one rule, for the bot's check
    before queueing and the engine's before painting. A picture under MIN_SIZE on a side is
    refused whatever the size: enlarging a speck (a 1x1 picture to 512x512) paints nothing."""
    if min(width, height) < MIN_SIZE:
        raise InvalidParams(
            f"the {what} is {width}x{height}: too small to paint (at least {MIN_SIZE} px on each side)"
        )
    min_side = min_input_side((*params.style_layers, *params.content_layers))
    out_w, out_h = fit_size(width, height, params.size)
    if min(out_w, out_h) < min_side:
        raise InvalidParams(
            f"the {what} is {width}x{height}: at {params.size} px it becomes {out_w}x{out_h}, too "
            f"thin for the chosen layers (at least {min_side} px on the short side; use a larger size)"
        )


def check_style_size(width: int, height: int, what: str = "style image") -> None:
    """InvalidParams when a style picture is too small to carry a style: with fewer pixels than
    a MIN_SIZE square its Gram matrices are those of a few flat colours (a 4x4 style paints a
    wash), so it is refused, as a content that small is, by the bot (from its header) and by
    every painting caller (`check_pictures`). A thin one with the pixels (300x5) is enlarged
    until the layers fit (bot/engine/pyramid.py, style_dims)."""
    if width * height < MIN_SIZE * MIN_SIZE:
        raise InvalidParams(
            f"the {what} is {width}x{height}: too small to carry a style (at least "
            f"{MIN_SIZE * MIN_SIZE} pixels, as {MIN_SIZE}x{MIN_SIZE})"
        )


def check_pictures(
    params: StyleParams,
    width: int,
    height: int,
    style_sizes: Sequence[tuple[int, int]],
    what: str = "content image",
    style_names: Sequence[str] = (),
) -> None:
    """InvalidParams when a job's pictures cannot be painted with its (validated) params: as many
    style images as blend weights, each large enough to carry a style (`check_style_size`), and
    content thick enough (`check_thick_enough`). The check of the decoded pictures at a trust
    boundary: the worker's read of a job, the command line, `stylize()`; a Painting trusts its
    caller. `style_names`: how messages name each style picture ("style image" by default)."""
    params.blend_weights(len(style_sizes))
    for i, (style_width, style_height) in enumerate(style_sizes):
        name = style_names[i] if i < len(style_names) else "style image"
        check_style_size(style_width, style_height, name)
    check_thick_enough(params, width, height, what)


def min_input_side(layers: Sequence[str]) -> int:
    """The shortest input side for which every layer in `layers` has at least one position."""
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    return 2 ** sum(1 for n in LAYER_NAMES[:deepest] if n.startswith("pool"))
