"""A painted result as bytes: stills and moving pictures alike, in the format that plays inline
in Discord and fits the upload limit, or the one asked for; and a delivered result made to fit
again when Discord refuses it as too large. No torch: the bot refits, the worker encodes."""

from __future__ import annotations

import io
import math
import os
import tempfile
from fractions import Fraction

from PIL import Image

from bot.engine.params import MAX_SIZE, ImageLimits
from bot.media.clips import (
    ANIMATED_FORMATS,
    Clip,
    ClipLimits,
    can_read_video,
    decode_clip,
    is_moving,
    is_video,
    probe_clip,
)
from bot.media.imaging import decode, encode, encode_to_fit
from bot.threads import codec_threads

CLIP_ENCODINGS = ("gif", "webp", "png", "mp4")  # what a moving result can be written as


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
        stream.codec_context.thread_count = codec_threads()
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


def encode_result(
    clip: Clip, *, fmt: str | None = None, limit_bytes: int | None = None, quality: int = 90
) -> tuple[bytes, str, str | None]:
    """A painted result as bytes, still or moving alike: in `fmt` when it is given, else as what
    plays inline and fits `limit_bytes` (a still: PNG, else the format that fits; a moving
    picture: `encode_clip_to_fit`). Returns (bytes, format, a sentence on a moving picture's
    format for the caption, or None)."""
    if not clip.moving:
        image = clip.frames[0]
        if fmt is not None:
            return encode(image, fmt, quality=quality), fmt, None
        if limit_bytes:
            return (*encode_to_fit(image, limit_bytes), None)
        return encode(image, "png"), "png", None
    if fmt is not None:
        return encode_clip(clip, fmt, quality=quality), fmt, None
    data, fmt, why = encode_clip_to_fit(clip, limit_bytes or None)
    return data, fmt, f"{len(clip.frames)} frames as {why}"


def refit_result(data: bytes, limit_bytes: int) -> tuple[bytes, str] | None:
    """A delivered result made to fit `limit_bytes` (Discord refused it as too large): a still
    re-encoded as `encode_to_fit` does, a moving picture decoded and encoded again as
    `encode_clip_to_fit` does (fewer bytes: smaller frames). Returns (bytes, format), or None
    when this process cannot read it (an MP4 where PyAV is not installed). CPU work: run it on a
    thread. The result was made within the server's limits: those bound the decoding here."""
    if is_video(data) and not can_read_video():
        return None
    if not is_moving(data):
        return encode_to_fit(decode(data, name="result"), limit_bytes)
    limits = ImageLimits(max_bytes=len(data))
    header = probe_clip(data, limits)
    frames = len(header.durations) if header and header.durations else 10_000
    side = max(header.width, header.height) if header else MAX_SIZE
    whole = ClipLimits(max_frames=frames, max_seconds=24 * 3600.0, max_side=side)
    clip = decode_clip(data, limits, whole, name="result")
    smaller, fmt, _ = encode_clip_to_fit(clip, limit_bytes)
    return smaller, fmt


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"
