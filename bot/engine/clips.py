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
import os
import tempfile
import warnings
from dataclasses import dataclass, field, replace
from fractions import Fraction

from PIL import Image, ImageSequence

from bot.engine.imaging import CorruptImage, ImageError, TooManyPixels, UnsupportedImage, to_rgb
from bot.engine.params import ImageLimits, StyleParams

ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # Pillow's names of the animated pictures taken
VIDEO_FORMATS = {"MP4": "video/mp4", "MOV": "video/quicktime", "WEBM": "video/webm"}
VIDEO_TYPES: frozenset[str] = frozenset(VIDEO_FORMATS.values())
CLIP_ENCODINGS = ("gif", "webp", "png", "mp4")  # what a result can be written as
MIN_FRAME_MS = 20  # browsers show shorter GIF frames for 100 ms: 20 ms is the shortest that plays


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
class ClipInfo:
    """A moving picture's header: what the limits are checked against."""

    format: str  # GIF, PNG, WEBP, MP4, MOV or WEBM
    width: int
    height: int
    frames: int  # 0 when a video does not say (then counted while decoding)
    seconds: float  # 0 when not timed (probe_clip's timing=False)
    loop: bool


@dataclass(frozen=True)
class Clip:
    frames: list[Image.Image]  # RGB, all one size
    durations: list[int]  # ms each frame is shown
    loop: bool  # plays forever (a GIF's loop), or once (a video)
    source: str  # the format it came in
    changes: tuple[str, ...] = field(default=())  # what fitting it to the limits did, for people

    @property
    def seconds(self) -> float:
        return sum(self.durations) / 1000

    def with_frames(self, frames: list[Image.Image]) -> Clip:
        """The same timing and looping, other pictures (the painted ones)."""
        assert len(frames) == len(self.frames)
        return replace(self, frames=list(frames))


def clip_params(params: StyleParams) -> tuple[StyleParams, tuple[str, ...]]:
    """A moving picture's StyleParams: its size at most `clip_size`, one pyramid level
    (bot/engine/clip_painting.py). Returns (params, notes for the member)."""
    notes = []
    if params.size > params.clip_size:
        notes.append(f"painted at {params.clip_size} px, the largest size for moving pictures here")
        params = params.replace(size=params.clip_size)
    return params.replace(pyramid_levels=1), tuple(notes)


def frames_to_paint(data: bytes, params: StyleParams, limits: ImageLimits = ImageLimits()) -> int:
    """How many frames a job's content will be painted as: 1 for a still, at most `clip_frames`
    for a moving picture (what the job costs in the fair queue). Reads the header only; an
    unreadable picture counts 1 (the decoder refuses it later, with the reason), a video that
    this install cannot read `clip_frames`."""
    if is_video(data) and not can_read_video():
        return params.clip_frames
    try:
        info = probe_clip(data, limits)
    except Exception:  # an estimate never stops a job: the decoder says what is wrong, later
        return 1
    if info is None:
        return 1
    return min(info.frames or params.clip_frames, params.clip_frames)


def is_video(data: bytes) -> bool:
    """MP4 and MOV start with an ISO box ('ftyp', ...); WebM and Matroska with EBML's magic."""
    return (
        data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
        or data[:4] == b"\x1a\x45\xdf\xa3"
    )


def is_moving(data: bytes) -> bool:
    """Whether `data` is a moving picture (a video, or an animation with a second frame), from
    its header: cheaper than `probe_clip`, which times every frame. Never raises: what cannot be
    read counts as a still, whose decoder says what is wrong."""
    if is_video(data):
        return True
    try:
        image = Image.open(io.BytesIO(data))
        return image.format in ANIMATED_FORMATS and bool(getattr(image, "is_animated", False))
    except Exception:
        return False


def probe_clip(
    data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "content", timing: bool = True
) -> ClipInfo | None:
    """The header of a moving picture; None for a still picture (one frame). Raises ImageError
    for what cannot be read or is too large. An animation's length takes a pass over its frames:
    `timing=False` leaves it 0 (for a caller that decodes them anyway)."""
    if is_video(data):
        return _probe_video(data, limits, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            frames = getattr(image, "n_frames", 1)
        except Exception:  # a still's own decoder (bot/engine/imaging.py) says what is wrong
            return None
    if frames <= 1 or image.format not in ANIMATED_FORMATS:
        return None
    width, height = image.size
    _check_pixels(width, height, limits, name)
    seconds = _animation_ms(image) / 1000 if timing else 0.0
    # a GIF without a NETSCAPE loop block plays once; APNG and WebP say 0 for "forever"
    loop = "loop" in image.info if image.format == "GIF" else image.info.get("loop", 0) == 0
    return ClipInfo(image.format or "?", width, height, frames, seconds, loop)


def _animation_ms(image: Image.Image) -> int:
    total = 0
    for frame in ImageSequence.Iterator(image):
        total += _frame_ms(frame)
    image.seek(0)
    return total


def _frame_ms(frame: Image.Image) -> int:
    frame.load()  # WebP sets a frame's duration when it is loaded, not when it is sought
    return max(MIN_FRAME_MS, int(frame.info.get("duration") or 100))


def _check_pixels(width: int, height: int, limits: ImageLimits, name: str) -> None:
    if width < 1 or height < 1:
        raise CorruptImage(f"the {name} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"the {name} is {width}x{height} = {width * height:,} pixels a frame; at most {limits.max_pixels:,} are allowed"
        )


def _open_video(data: bytes, name: str):
    try:
        import av
    except ImportError:  # an install without the video library: say so, do not crash
        raise UnsupportedImage(
            f"the {name} is a video, and this install cannot read videos: pip install 'stylebot[video]'"
        ) from None
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:
        raise UnsupportedImage(f"the {name} is not a video we can read ({exc})") from None
    if not container.streams.video:
        container.close()
        raise UnsupportedImage(f"the {name} has no video track")
    return container


def _video_format(container) -> str:
    names = container.format.name.split(",")
    if "webm" in names or "matroska" in names:
        return "WEBM"
    return "MOV" if "mov" in names and "mp4" not in names else "MP4"


def _probe_video(data: bytes, limits: ImageLimits, name: str) -> ClipInfo:
    container = _open_video(data, name)
    try:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_pixels(width, height, limits, name)
        seconds = 0.0
        if stream.duration is not None and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000
        return ClipInfo(_video_format(container), width, height, stream.frames or 0, seconds, False)
    finally:
        container.close()


def decode_clip(
    data: bytes,
    limits: ImageLimits = ImageLimits(),
    clip_limits: ClipLimits = ClipLimits(),
    *,
    max_side: int | None = None,
    name: str = "content",
) -> Clip:
    """All the frames a clip's limits allow, fitted (`fit`), each no larger than `max_side`
    (default: the limits' max_side) on its longest side. Raises ImageError."""
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"the {name} is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.1f} MB"
        )
    side = max_side or clip_limits.max_side
    info = probe_clip(data, limits, name=name, timing=False)  # the decoding times the frames
    if info is None:
        raise UnsupportedImage(f"the {name} is a still picture, not a moving one")
    # decode no further than the limit (a long video is not decoded to its end)
    horizon_ms = clip_limits.max_seconds * 1000
    if info.format in VIDEO_FORMATS:
        frames, durations = _decode_video(data, horizon_ms, side, name)
    else:
        frames, durations = _decode_animation(data, horizon_ms, side, name)
    if len(frames) < 1:
        raise CorruptImage(f"the {name} has no frames that can be decoded")
    clip = Clip(frames, durations, info.loop, info.format)
    return fit(clip, clip_limits, total_seconds=max(info.seconds, clip.seconds))


def _shrunk(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _decode_animation(data: bytes, horizon_ms: float, side: int, name: str) -> tuple[list, list]:
    frames, durations, shown = [], [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            for frame in ImageSequence.Iterator(image):
                if shown >= horizon_ms:
                    durations[-1] += _frame_ms(frame)  # counted, not decoded: `fit` cuts here
                    continue
                ms = _frame_ms(frame)
                frames.append(_shrunk(to_rgb(frame.copy()), side))
                durations.append(ms)
                shown += ms
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if not frames:
                raise CorruptImage(f"the {name} is damaged and cannot be decoded: {exc}") from None
    return frames, durations


def _decode_video(data: bytes, horizon_ms: float, side: int, name: str) -> tuple[list, list]:
    container = _open_video(data, name)
    stamps, frames = [], []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            when = float(frame.time or 0.0) * 1000
            if when >= horizon_ms:
                stamps.append(when)  # where the last kept frame ends
                break
            frames.append(_shrunk(frame.to_image().convert("RGB"), side))
            stamps.append(when)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        base = stream.time_base
        end = float(stream.duration * base) * 1000 if stream.duration and base else 0.0
    except Exception as exc:
        if not frames:
            raise CorruptImage(f"the {name} is damaged and cannot be decoded: {exc}") from None
        rate, end = Fraction(25), 0.0
    finally:
        container.close()
    if len(stamps) == len(frames) and stamps:  # decoded to the end: the last frame lasts until
        # the track ends (or one frame time, where the track does not say)
        last = stamps[-1] + 1000 / float(rate)
        stamps.append(end if end > stamps[-1] + MIN_FRAME_MS / 2 else last)
    durations = [max(MIN_FRAME_MS, round(b - a)) for a, b in zip(stamps, stamps[1:], strict=False)]
    return frames, durations


def fit(clip: Clip, limits: ClipLimits, *, total_seconds: float | None = None) -> Clip:
    """The clip within `limits`: its first `max_seconds`, then every k-th frame (each kept frame
    shown as long as the k it stands for) until at most `max_frames` are left."""
    frames, durations = list(clip.frames), list(clip.durations)
    changes = list(clip.changes)
    total = total_seconds if total_seconds is not None else clip.seconds
    keep, shown = 0, 0
    while keep < len(frames) and shown < limits.max_seconds * 1000:
        shown += durations[keep]
        keep += 1
    if keep < len(frames) or total > limits.max_seconds + 1e-3:
        frames, durations = frames[:keep], durations[:keep]
        over = shown - limits.max_seconds * 1000
        if over > 0:  # the last frame ends at the limit
            durations[-1] = max(MIN_FRAME_MS, round(durations[-1] - over))
        changes.append(f"the first {limits.max_seconds:g} s of {total:.1f} s")
    if len(frames) > limits.max_frames:
        before = len(frames) / (sum(durations) / 1000)
        k = math.ceil(len(frames) / limits.max_frames)
        durations = [sum(durations[i : i + k]) for i in range(0, len(frames), k)]
        frames = frames[::k]
        after = len(frames) / (sum(durations) / 1000)
        changes.append(f"{after:.3g} frames a second instead of {before:.3g}")
    return replace(clip, frames=frames, durations=durations, changes=tuple(changes))


def encode_clip(clip: Clip, fmt: str, *, quality: int = 90) -> bytes:
    """The clip as an animated GIF, WebP or PNG (APNG), or an MP4 (H.264), timing kept."""
    fmt = fmt.lower()
    if fmt not in CLIP_ENCODINGS:
        raise ValueError(
            f"cannot write a moving picture as {fmt!r}; use one of {', '.join(CLIP_ENCODINGS)}"
        )
    if fmt == "mp4":
        return _encode_mp4(clip, quality)
    buffer = io.BytesIO()
    first, rest = clip.frames[0], clip.frames[1:]
    options: dict = {"save_all": True, "append_images": rest, "duration": list(clip.durations)}
    if clip.loop:
        options["loop"] = 0
    if fmt == "gif":
        # one palette, no dithering: error diffusion differs from frame to frame wherever the
        # picture moves, and shimmers (measured: warping error 0.0481 with Floyd-Steinberg,
        # 0.0456 without, 0.0423 before encoding); a painting's own texture hides the banding
        palette = _shared_palette(clip.frames)
        first = first.quantize(palette=palette, dither=Image.Dither.NONE)
        rest = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in rest]
        first.save(
            buffer, "GIF", **{**options, "append_images": rest, "optimize": False, "disposal": 1}
        )
    elif fmt == "webp":
        first.save(buffer, "WEBP", **options, quality=quality, method=4)
    else:
        first.save(buffer, "PNG", **options, compress_level=6)
    return buffer.getvalue()


def _shared_palette(frames: list[Image.Image]) -> Image.Image:
    """One 256-colour palette for every frame (a palette per frame makes colours flicker), made
    from up to 8 frames side by side."""
    sample = frames[:: max(1, len(frames) // 8)][:8]
    width, height = sample[0].size
    sheet = Image.new("RGB", (width * len(sample), height))
    for i, frame in enumerate(sample):
        sheet.paste(frame, (i * width, 0))
    return sheet.quantize(256, method=Image.Quantize.MEDIANCUT)


def _encode_mp4(clip: Clip, quality: int) -> bytes:
    width, height = clip.frames[0].size
    even = (width - width % 2, height - height % 2)  # yuv420p needs even sides
    crf = str(round(51 - quality * 0.35))  # quality 90 -> crf 20
    # faststart (the index first, so that Discord plays it while it loads) rewrites the file:
    # FFmpeg needs a real file for that, not a buffer
    with tempfile.TemporaryDirectory(prefix="stylebot-mp4-") as folder:
        path = os.path.join(folder, "clip.mp4")
        _write_mp4(path, clip, even, crf)
        with open(path, "rb") as file:
            return file.read()


def _write_mp4(path: str, clip: Clip, even: tuple[int, int], crf: str) -> None:
    import av  # only here and in decoding: the still path never needs it

    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width, stream.height = max(2, even[0]), max(2, even[1])
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.options = {"crf": crf, "preset": "medium"}
        at, lengths = 0, {}  # pts -> ms: each packet says how long its frame shows (the last's
        # length is kept only so; the others' follow from the next frame's time)
        for image, ms in zip(clip.frames, clip.durations, strict=True):
            frame = av.VideoFrame.from_image(
                image.crop((0, 0, *even)) if even != image.size else image
            )
            frame.pts, frame.time_base = at, Fraction(1, 1000)
            lengths[at] = ms
            at += ms
            for packet in stream.encode(frame):
                _mux(container, packet, lengths)
        for packet in stream.encode():
            _mux(container, packet, lengths)


def _mux(container, packet, lengths: dict[int, int]) -> None:
    if packet.pts in lengths and packet.time_base == Fraction(1, 1000):
        packet.duration = lengths[packet.pts]
    container.mux(packet)


def encode_clip_to_fit(
    clip: Clip, limit_bytes: int | None, prefer: str | None = None
) -> tuple[bytes, str, str]:
    """The clip in the format that plays inline in Discord and fits `limit_bytes`, with why.

    A short loop (a GIF, APNG or WebP that came in) goes out as a GIF, which every Discord
    client plays inline and loops; a video, or a loop whose GIF is too large, as an MP4 (about a
    tenth of the GIF's bytes, full colour). If neither fits, the frames are made smaller until the
    MP4 does. Returns (bytes, format, a sentence on the choice for the caption)."""
    order = (
        [prefer]
        if prefer
        else (["gif", "mp4"] if clip.source in ANIMATED_FORMATS else ["mp4", "gif"])
    )
    if not prefer and not can_read_video():
        order = ["gif"]
    tried = []
    for fmt in order:
        data = encode_clip(clip, fmt)
        if limit_bytes is None or len(data) <= limit_bytes:
            why = (
                "a looping GIF"
                if fmt == "gif"
                else f"{'an' if fmt == 'mp4' else 'a'} {fmt.upper()}"
            )
            if tried:
                why += f" (the {tried[0][0].upper()} was {_size(len(tried[0][1]))}, over the upload limit)"
            return data, fmt, why
        tried.append((fmt, data))
    fmt, data = min(tried, key=lambda t: len(t[1]))
    scale = math.sqrt(limit_bytes / len(data)) * 0.9 if limit_bytes else 1.0
    smaller = [
        f.resize(
            (max(16, int(f.width * scale)), max(16, int(f.height * scale))),
            Image.Resampling.LANCZOS,
        )
        for f in clip.frames
    ]
    data, fmt, why = encode_clip_to_fit(clip.with_frames(smaller), limit_bytes, prefer=fmt)
    return (
        data,
        fmt,
        f"{why}, made smaller ({smaller[0].width}x{smaller[0].height}) to fit the upload limit",
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def can_read_video() -> bool:
    """Whether PyAV is installed (the engine has it; a bot host may not: the `video` extra)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True
