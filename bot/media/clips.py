"""Moving pictures as bytes <-> frames: animated GIF, APNG and WebP through Pillow; video clips
(MP4, WebM, MOV) through PyAV, whose wheels carry their own FFmpeg. No torch: the bot process
checks a clip against its limits with this module before anything is queued.

A clip is its frames, how long each is shown (milliseconds) and whether it loops. A clip over
its limits is fitted, never refused for length: cut to the first `max_seconds`, then its frame
rate lowered until `max_frames` are left; `Clip.changes` says what was done, for the caption.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image

from bot.engine.params import ImageLimits, StyleParams, fit_size
from bot.media.clip_header import (
    MIN_GIF_FRAME_MS,
    ClipHeader,
    animation_header,
    open_video,
    video_header,
)
from bot.media.imaging import (
    CorruptImage,
    ImageError,
    TooManyPixels,
    UnsupportedImage,
    decode,
    to_rgb,
    upright_size,
)
from bot.threads import codec_threads

ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # Pillow's names of the animated pictures taken
VIDEO_FORMATS = {"MP4": "video/mp4", "MOV": "video/quicktime", "WEBM": "video/webm"}
VIDEO_TYPES: frozenset[str] = frozenset(VIDEO_FORMATS.values())
STILL = "still"  # a Clip's source when it is a still picture (one frame)


@dataclass(frozen=True)
class ClipLimits:
    """What one moving picture may be (a job's StyleParams clip_*: the server's limits)."""

    max_frames: int = StyleParams.clip_frames  # a clip costs its frames in time and memory
    max_seconds: float = StyleParams.clip_seconds  # longer clips are cut to their first max_seconds
    max_side: int = StyleParams.clip_size  # the longest side of a painted clip, px

    @classmethod
    def of(cls, params: StyleParams) -> ClipLimits:
        return cls(params.clip_frames, params.clip_seconds, params.clip_size)


@dataclass(frozen=True)
class Clip:
    frames: list[Image.Image]  # RGB, all one size
    durations: list[int]  # ms each frame is shown
    loop: bool  # plays forever (a GIF's loop), or once (a video)
    source: str  # the format it came in
    changes: tuple[str, ...] = field(default=())  # what fitting it to the limits did, for people

    @classmethod
    def still(cls, image: Image.Image) -> Clip:
        """A still picture: a clip of one frame."""
        return cls([image], [0], False, STILL)

    @property
    def moving(self) -> bool:
        return self.source != STILL

    @property
    def what(self) -> str:
        """How messages name a job's content made of this clip."""
        return "content's frames" if self.moving else "content image"

    @property
    def seconds(self) -> float:
        return sum(self.durations) / 1000

    def with_frames(self, frames: list[Image.Image]) -> Clip:
        """The same timing and looping, other pictures (the painted ones)."""
        assert len(frames) == len(self.frames)
        return replace(self, frames=list(frames))


@dataclass(frozen=True)
class FramePlan:
    """Which of an animation's frames are kept and how long each shows, known before decoding."""

    keep: tuple[int, ...]  # the indices of the frames kept
    durations: tuple[int, ...]  # ms each kept frame shows
    changes: tuple[str, ...]  # what fitting did, for people

    @property
    def decode(self) -> int:
        """Frames to decode: an animation's frames build on the ones before, up to the last kept."""
        return self.keep[-1] + 1


def clip_params(params: StyleParams) -> tuple[StyleParams, tuple[str, ...]]:
    """A moving picture's StyleParams: its size at most `clip_size`, one pyramid level
    (bot/engine/painting.py), previews (if any) every tenth of that schedule's steps. Returns
    (params, notes for the member)."""
    notes = []
    if params.size > params.clip_size:
        notes.append(f"painted at {params.clip_size} px, the largest size for moving pictures here")
        params = params.replace(size=params.clip_size)
    params = params.replace(pyramid_levels=1)
    if params.preview_every:  # its previews follow its own schedule (one level: 300 steps)
        params = params.with_previews()
    return params, tuple(notes)


def read_content(
    data: bytes,
    params: StyleParams,
    limits: ImageLimits = ImageLimits(),
    *,
    where: str = "",
    should_stop: Callable[[], bool] | None = None,
    first_frame: bool = False,
) -> tuple[StyleParams, Clip, tuple[str, ...]]:
    """A job's content as the frames to paint, for a still and a moving picture alike: a still
    is a clip of one frame; a moving picture's (unless `first_frame`) decoded within its limits,
    with its StyleParams (`clip_params`). `where` follows the name in messages (a path). Returns
    (params, clip, what was changed to fit, for the member). Raises ImageError, and
    ReadingStopped once `should_stop` says so between frames."""
    if first_frame or not is_moving(data):
        clip = Clip.still(decode(data, limits, name=f"content image{where}"))
        return params, clip, _enlarged(clip, params)
    params, notes = clip_params(params)
    clip = decode_clip(
        data, limits, ClipLimits.of(params), name=f"content{where}", should_stop=should_stop
    )
    return params, clip, (*notes, *clip.changes, *_enlarged(clip, params))


def _enlarged(clip: Clip, params: StyleParams) -> tuple[str, ...]:
    """Says so when the content is smaller than the size it is painted at (it is enlarged)."""
    width, height = clip.frames[0].size
    if max(width, height) >= params.size:
        return ()
    out_w, out_h = fit_size(width, height, params.size)
    return (f"enlarged from {width}x{height} to {out_w}x{out_h}",)


@dataclass(frozen=True)
class ContentHeader:
    """What a job's content will be, from its header alone: the params it is painted with (a
    moving picture's `clip_params`), the size of its frames as the worker decodes them (EXIF
    turned, a clip's frames shrunk to its longest side) and how many frames it is painted as."""

    params: StyleParams
    width: int
    height: int
    frames: int


def read_content_header(
    data: bytes,
    params: StyleParams,
    limits: ImageLimits = ImageLimits(),
    *,
    name: str = "content image",
) -> ContentHeader:
    """`read_content` without decoding a pixel: what the worker will paint, and every refusal of
    the header's (format, size in bytes and pixels, shape, a moving picture's canvas and frame
    count). Raises ImageError. A damaged body is found by the decoder, in the worker."""
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"the {name} is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.1f} MB"
        )
    if not is_moving(data):
        return ContentHeader(params, *upright_size(data, limits, name=name), 1)
    params, _ = clip_params(params)
    header = probe_clip(data, limits, name=name)
    assert header is not None  # moving, so a header of frames
    width, height = header.width, header.height
    side = ClipLimits.of(params).max_side
    if max(width, height) > side:  # as `_shrunk` and `_video_frame` shrink each frame
        scale = side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return ContentHeader(params, width, height, frames_to_paint(data, params, limits))


def frames_to_paint(data: bytes, params: StyleParams, limits: ImageLimits = ImageLimits()) -> int:
    """How many frames a job's content will be painted as: 1 for a still, at most `clip_frames`
    for a moving picture (what the job costs in the fair queue). Reads the header only; an
    unreadable picture counts 1 (the decoder refuses it later, with the reason), a video that
    this install cannot read `clip_frames`."""
    if is_video(data) and not can_read_video():
        return params.clip_frames
    try:
        header = probe_clip(data, limits)
    except Exception:  # an estimate never stops a job: the decoder says what is wrong, later
        return 1
    if header is None:
        return 1
    clip_limits = ClipLimits.of(params)
    if header.durations:
        return len(plan_animation(header, clip_limits, limits).keep)
    span = _video_span(header, clip_limits, limits)[0]
    return max(1, min(params.clip_frames, math.ceil(span * header.rate)))


def is_video(data: bytes) -> bool:
    """MP4 and MOV start with an ISO box ('ftyp', ...); WebM and Matroska with EBML's magic."""
    return (
        data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
        or data[:4] == b"\x1a\x45\xdf\xa3"
    )


def is_moving(data: bytes) -> bool:
    """Whether `data` is a moving picture (a video, or an animation with a second frame), from
    its header. Never raises: what cannot be read counts as a still, whose decoder says what is
    wrong."""
    if is_video(data):
        return True
    try:
        return animation_header(data, "picture") is not None
    except Exception:
        return False


def probe_clip(
    data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "content"
) -> ClipHeader | None:
    """The header of a moving picture (nothing decoded); None for a still picture (one frame).
    Raises ImageError for what cannot be read, or whose frames or canvas are too large."""
    header = video_header(data, name) if is_video(data) else animation_header(data, name)
    if header is None:
        return None
    _check_pixels(header.width, header.height, limits, name)
    if header.canvas != (header.width, header.height):
        width, height = header.canvas
        if width * height > limits.max_pixels:
            raise TooManyPixels(
                f"the {name} places a frame outside its {header.width}x{header.height} picture, "
                f"on a {width}x{height} canvas = {width * height:,} pixels; at most "
                f"{limits.max_pixels:,} are allowed"
            )
    return header


def _check_pixels(width: int, height: int, limits: ImageLimits, name: str) -> None:
    if width < 1 or height < 1:
        raise CorruptImage(f"the {name} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"the {name} is {width}x{height} = {width * height:,} pixels a frame; at most {limits.max_pixels:,} are allowed"
        )


def decode_clip(
    data: bytes,
    limits: ImageLimits = ImageLimits(),
    clip_limits: ClipLimits = ClipLimits(),
    *,
    max_side: int | None = None,
    name: str = "content",
    should_stop: Callable[[], bool] | None = None,
) -> Clip:
    """The frames a clip's limits allow, fitted, each no larger than `max_side` (default: the
    limits' max_side) on its longest side. The work is bounded before anything is decoded: the
    header's frames x canvas pixels, at most `limits.max_clip_pixels`, and what is past the
    limits is never decoded (an animation) or dropped as it is decoded (a video), so memory holds
    at most `max_frames` frames. `should_stop` is asked between frames: True raises
    ReadingStopped. Raises ImageError."""
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"the {name} is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.1f} MB"
        )
    header = probe_clip(data, limits, name=name)
    if header is None:
        raise UnsupportedImage(f"the {name} is a still picture, not a moving one")
    side = max_side or clip_limits.max_side
    stop = should_stop or (lambda: False)
    if header.durations:
        plan = plan_animation(header, clip_limits, limits)
        frames = _decode_animation(data, header, plan, limits, side, name, stop)
        durations, changes = list(plan.durations[: len(frames)]), plan.changes
    else:
        frames, durations, changes = _decode_video(
            data, header, clip_limits, limits, side, name, stop
        )
    if len(frames) < 1:
        raise CorruptImage(f"the {name} has no frames that can be decoded")
    return Clip(frames, durations, header.loop, header.format, changes)


class ReadingStopped(Exception):
    """`decode_clip` was told to stop (the job was cancelled while its clip was read)."""


def plan_animation(header: ClipHeader, clip_limits: ClipLimits, limits: ImageLimits) -> FramePlan:
    """The frames kept from an animation, from its header: no more than `max_clip_pixels` of
    canvas decoded, its first `max_seconds`, then its frame rate lowered to `max_frames`."""
    durations = list(header.durations)
    affordable = max(1, limits.max_clip_pixels // header.frame_cost)
    notes, total = [], header.seconds
    if affordable < len(durations) and sum(durations[:affordable]) < clip_limits.max_seconds * 1000:
        durations = durations[:affordable]
        total = sum(durations) / 1000  # cut already: what follows does not cut it again
        notes.append(_too_much_to_read(total, header))
    keep, kept_durations, changes = fit_timing(
        durations, clip_limits, total_seconds=total, floor_ms=_floor(header.format)
    )
    return FramePlan(tuple(keep), tuple(kept_durations), (*notes, *changes))


def _too_much_to_read(seconds: float, header: ClipHeader) -> str:
    width, height = header.canvas
    first = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}"
    return (
        f"the first {first} s of {header.seconds:.1f} s: at {width}x{height} a frame, "
        "more would take too long to read"
    )


def _floor(fmt: str) -> int:
    """The shortest a frame may show: the GIF rule for GIFs, 1 ms for everything else."""
    return MIN_GIF_FRAME_MS if fmt == "GIF" else 1


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap: a large frame is first reduced by whole factors (fast), then resampled
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _decode_animation(
    data: bytes,
    header: ClipHeader,
    plan: FramePlan,
    limits: ImageLimits,
    side: int,
    name: str,
    stop: Callable[[], bool],
) -> list[Image.Image]:
    """The planned frames, each cut to the picture a browser shows (a GIF frame placed past the
    logical screen grows Pillow's canvas, not the picture)."""
    frames: list[Image.Image] = []
    keep = set(plan.keep)
    shown = (0, 0, header.width, header.height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            for index in range(plan.decode):
                if stop():
                    raise ReadingStopped
                image.seek(index)
                _check_pixels(*image.size, limits, name)  # the header said so; the decoder agrees
                if index in keep:
                    frame = to_rgb(image.copy())
                    if frame.size != (header.width, header.height):
                        frame = frame.crop(shown)
                    frames.append(_shrunk(frame, side))
        except (ReadingStopped, ImageError):
            raise
        except Image.DecompressionBombError:
            raise TooManyPixels(
                f"the {name} grows past {limits.max_pixels:,} pixels a frame while it is decoded"
            ) from None
        except Exception as exc:  # any decoder error is the member's bad input, with the reason
            if not frames:
                raise CorruptImage(f"the {name} is damaged and cannot be decoded: {exc}") from None
    return frames


def _video_frame(frame, side: int) -> Image.Image:
    """A decoded video frame as RGB, shrunk to `side` by FFmpeg as it converts (one pass)."""
    width, height = frame.width, frame.height
    if max(width, height) > side:
        scale = side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return frame.to_image(width=width, height=height, interpolation="AREA").convert("RGB")


def _video_span(
    header: ClipHeader, clip_limits: ClipLimits, limits: ImageLimits
) -> tuple[float, tuple[str, ...]]:
    """The seconds of a video to decode (from its start) and why it is cut: its first
    `max_seconds`, fewer where its frames x pixels would pass `max_clip_pixels`."""
    length = header.video_seconds
    span = min(length, clip_limits.max_seconds) if length else clip_limits.max_seconds
    affordable = max(1, limits.max_clip_pixels // header.frame_cost)
    if span * header.rate > affordable:
        span = affordable / header.rate
        return span, (_too_much_to_read(span, header),)
    if length > clip_limits.max_seconds + 1e-3:
        return span, (f"the first {clip_limits.max_seconds:g} s of {length:.1f} s",)
    return span, ()


def _decode_video(
    data: bytes,
    header: ClipHeader,
    clip_limits: ClipLimits,
    limits: ImageLimits,
    side: int,
    name: str,
    stop: Callable[[], bool],
) -> tuple[list[Image.Image], list[int], tuple[str, ...]]:
    """A video's frames over its span, dropped while decoding down to `max_frames` (evenly in
    time: memory holds the frames kept, whatever the frame rate), each shown until the next."""
    span, changes = _video_span(header, clip_limits, limits)
    span_ms = span * 1000
    slots = max(1, min(clip_limits.max_frames, math.ceil(span * header.rate)))
    slot_ms, frame_ms = span_ms / slots, 1000 / header.rate
    frames: list[Image.Image] = []
    stamps: list[float] = []
    within = pixels = 0  # frames decoded within the span, and their pixels
    start, when, ended_by = None, 0.0, "stream"  # what ended the decoding: stream, span, budget
    container = open_video(data, name)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = codec_threads()  # the process's budget (bot/threads.py)
        for frame in container.decode(stream):
            if stop():
                raise ReadingStopped
            _check_pixels(frame.width, frame.height, limits, name)
            stamp = float(frame.time or 0.0) * 1000
            start = stamp if start is None else start
            when, pixels = stamp - start, pixels + frame.width * frame.height
            if when >= span_ms - 1e-6 or pixels > limits.max_clip_pixels:
                ended_by = "span" if when >= span_ms - 1e-6 else "budget"
                break
            within += 1
            if len(frames) < slots and when >= len(frames) * slot_ms - frame_ms / 2:
                frames.append(_video_frame(frame, side))
                stamps.append(when)
    except (ReadingStopped, ImageError):
        raise
    except Exception as exc:  # any decoder error is the member's bad input, with the reason
        if not frames:
            raise CorruptImage(f"the {name} is damaged and cannot be decoded: {exc}") from None
        ended_by = "stream"
    finally:
        container.close()
    if not frames:
        return [], [], changes
    if ended_by == "span":
        end = span_ms
    elif ended_by == "budget":  # the header understated the work (a changing size or rate)
        end, changes = when, (_too_much_to_read(when / 1000, header),)
    else:  # the track ended: its last frame shows until the track's end, or one frame time
        track_end = header.video_seconds * 1000
        end = min(span_ms, track_end if track_end > when + 1 else when + frame_ms)
    # rounded where they fall, not one by one: the lengths add up to the clip's length
    bounds = [round(t) for t in (*stamps, end)]
    durations = [max(1, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    if len(frames) < within:
        after = len(frames) / (sum(durations) / 1000)
        changes = (*changes, _slower(after, header.rate))
    return frames, durations, changes


def fit_timing(
    durations: list[int],
    limits: ClipLimits,
    *,
    total_seconds: float | None = None,
    floor_ms: int = MIN_GIF_FRAME_MS,
) -> tuple[list[int], list[int], list[str]]:
    """Which frames of a timing are kept within `limits`: its first `max_seconds`, then every
    k-th frame (each kept frame shown as long as the k it stands for) until at most `max_frames`
    are left. Returns (indices kept, their durations, changes for people)."""
    indices, durations = list(range(len(durations))), list(durations)
    changes = []
    total = total_seconds if total_seconds is not None else sum(durations) / 1000
    keep, shown = 0, 0
    while keep < len(durations) and shown < limits.max_seconds * 1000:
        shown += durations[keep]
        keep += 1
    if keep < len(durations) or total > limits.max_seconds + 1e-3:
        indices, durations = indices[:keep], durations[:keep]
        over = shown - limits.max_seconds * 1000
        if over > 0:  # the last frame ends at the limit
            durations[-1] = max(floor_ms, round(durations[-1] - over))
        changes.append(f"the first {limits.max_seconds:g} s of {total:.1f} s")
    if len(durations) > limits.max_frames:
        before = len(durations) / (sum(durations) / 1000)
        k = math.ceil(len(durations) / limits.max_frames)
        durations = [sum(durations[i : i + k]) for i in range(0, len(durations), k)]
        indices = indices[::k]
        after = len(durations) / (sum(durations) / 1000)
        changes.append(_slower(after, before))
    return indices, durations, changes


def _slower(after: float, before: float) -> str:
    def rate(x: float) -> str:
        return f"{x:.3g}" if x < 100 else f"{x:.0f}"

    return f"{rate(after)} frames a second instead of {rate(before)}"


def fit(clip: Clip, limits: ClipLimits, *, total_seconds: float | None = None) -> Clip:
    """The clip within `limits` (`fit_timing`), its frames kept."""
    keep, durations, changes = fit_timing(
        clip.durations, limits, total_seconds=total_seconds, floor_ms=_floor(clip.source)
    )
    return replace(
        clip,
        frames=[clip.frames[i] for i in keep],
        durations=durations,
        changes=(*clip.changes, *changes),
    )


def can_read_video() -> bool:
    """Whether PyAV is installed (the engine has it; a bot host may not: the `video` extra)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True
