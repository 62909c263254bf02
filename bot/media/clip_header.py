"""What a moving picture costs, read from its header before a single frame is decoded (no torch).

An animation's file says how many frames it has, where each is placed and how long each shows,
without its pixels: the GIF's blocks, the APNG's fcTL chunks and the WebP's ANMF chunks are read
here by skipping over the compressed data. A video's container says its size, frame rate and
length. From that, `bot/media/clips.py` knows the work (frames x canvas pixels) and refuses or
fits a clip before it decodes anything.

The canvas is what a decoder paints every frame on: Pillow grows a GIF's canvas to hold a frame
placed past its logical screen, so the canvas is the largest extent of any frame, not the header's
size.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from bot.extras import install_hint
from bot.media.imaging import CorruptImage, UnsupportedImage

# What decoding a frame costs, in video pixels: Pillow paints every animation frame onto the whole
# canvas in RGB, about ten times the time of a video decoder's pixel (measured on one core: about
# 0.2 s a frame at 6000x6000 for a GIF, 1-15 ns a pixel for H.264)
ANIMATION_PIXEL_COST = 10
MIN_GIF_FRAME_MS = (
    20  # browsers show shorter GIF frames for 100 ms: 20 ms is the shortest that plays
)
DEFAULT_FRAME_MS = 100  # an animation frame that says 0 ms is shown this long, as browsers do


@dataclass(frozen=True)
class ClipHeader:
    """A moving picture as its header describes it."""

    format: str  # GIF, PNG, WEBP, MP4, MOV or WEBM
    width: int  # the picture shown (a GIF's logical screen)
    height: int
    canvas: tuple[int, int]  # what each frame is decoded onto (>= width x height)
    durations: tuple[int, ...]  # ms each frame shows (an animation); () for a video
    loop: bool
    rate: float = 0.0  # a video's frames a second; 0 for an animation
    video_seconds: float = 0.0  # a video's length from its container; 0 when it does not say

    @property
    def frames(self) -> int:
        """An animation's frames; a video's from its rate and length (0 when unknown)."""
        if self.durations:
            return len(self.durations)
        return round(self.rate * self.video_seconds)

    @property
    def seconds(self) -> float:
        return sum(self.durations) / 1000 if self.durations else self.video_seconds

    @property
    def frame_cost(self) -> int:
        """What decoding one frame costs, in video pixels (counted against max_clip_pixels)."""
        pixels = self.canvas[0] * self.canvas[1]
        return pixels * ANIMATION_PIXEL_COST if self.durations else pixels


def animation_header(data: bytes, name: str) -> ClipHeader | None:
    """The header of an animated GIF, APNG or WebP; None for anything else, or one frame."""
    try:
        if data[:6] in (b"GIF87a", b"GIF89a"):
            header = _gif(data)
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            header = _apng(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            header = _webp(data)
        else:
            return None
    except (struct.error, IndexError, ValueError) as exc:
        raise CorruptImage(f"the {name} is damaged and cannot be read ({exc})") from None
    if header is None or len(header.durations) < 2:
        return None
    return header


def _gif(data: bytes) -> ClipHeader | None:
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    right, bottom, loop = width, height, False
    durations: list[int] = []
    delay = None  # the graphic control extension's delay for the next frame, in ms
    while at < len(data):
        kind = data[at]
        if kind == 0x3B:  # trailer
            break
        if kind == 0x21:  # an extension: its label, then sub-blocks
            label = data[at + 1]
            if label == 0xF9 and data[at + 2] >= 4:
                delay = struct.unpack_from("<H", data, at + 4)[0] * 10
            elif label == 0xFF and data[at + 3 : at + 14] == b"NETSCAPE2.0":
                loop = True
            at = _skip_sub_blocks(data, at + 2)
        elif kind == 0x2C:  # an image: where it is placed, then its (skipped) pixels
            x, y, w, h, image_flags = struct.unpack_from("<HHHHB", data, at + 1)
            right, bottom = max(right, x + w), max(bottom, y + h)
            at += 10 + (3 << ((image_flags & 7) + 1) if image_flags & 0x80 else 0)
            at = _skip_sub_blocks(data, at + 1)  # after the LZW code size
            if at > len(data):
                break  # the last frame is cut short: its decoder says so
            durations.append(max(MIN_GIF_FRAME_MS, delay or DEFAULT_FRAME_MS))
            delay = None
        else:
            break  # not a block: what follows cannot be read (the decoder stops there too)
    return ClipHeader("GIF", width, height, (right, bottom), tuple(durations), loop)


def _skip_sub_blocks(data: bytes, at: int) -> int:
    """The offset after a chain of sub-blocks (a size byte, that many bytes, ..., a 0)."""
    while at < len(data) and data[at]:
        at += data[at] + 1
    return at + 1


def _apng(data: bytes) -> ClipHeader | None:
    at, width, height = 8, 0, 0
    durations: list[int] = []
    loop, animated, default_image = True, False, False
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        body = at + 8
        if kind == b"IHDR":
            width, height = struct.unpack_from(">II", data, body)
        elif kind == b"acTL":
            animated = True
            loop = struct.unpack_from(">I", data, body + 4)[0] == 0
        elif kind == b"IDAT" and animated and not durations:
            default_image = True  # a still shown where animation is not played: Pillow's frame 0
        elif kind == b"fcTL":
            delay_num, delay_den = struct.unpack_from(">HH", data, body + 20)
            ms = round(delay_num * 1000 / (delay_den or 100))
            durations.append(ms or DEFAULT_FRAME_MS)
        elif kind == b"IEND":
            break
        at = body + length + 4
    if not animated:
        return None
    if default_image:
        durations.insert(0, DEFAULT_FRAME_MS)
    # APNG frames must lie inside the canvas (Pillow refuses the file otherwise)
    return ClipHeader("PNG", width, height, (width, height), tuple(durations), loop)


def _webp(data: bytes) -> ClipHeader | None:
    at, width, height, loop = 12, 0, 0, True
    durations: list[int] = []
    while at + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, at)
        body = at + 8
        if kind == b"VP8X":
            width = int.from_bytes(data[body + 4 : body + 7], "little") + 1
            height = int.from_bytes(data[body + 7 : body + 10], "little") + 1
        elif kind == b"ANIM":
            loop = struct.unpack_from("<H", data, body + 4)[0] == 0
        elif kind == b"ANMF":
            ms = int.from_bytes(data[body + 12 : body + 15], "little")
            durations.append(ms or DEFAULT_FRAME_MS)
        at = body + length + (length & 1)
    # WebP frames must lie inside the canvas (libwebp refuses the file otherwise)
    return ClipHeader("WEBP", width, height, (width, height), tuple(durations), loop)


def video_header(data: bytes, name: str) -> ClipHeader:
    """A video's size, frame rate and length from its container (nothing decoded)."""
    container = open_video(data, name)
    try:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        seconds = 0.0
        if stream.duration is not None and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / 1_000_000
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        return ClipHeader(
            video_format(container), width, height, (width, height), (), False, rate, seconds
        )
    finally:
        container.close()


def open_video(data: bytes, name: str):
    """A PyAV container of a video with a video track; ImageError otherwise."""
    try:
        import av  # optional (the `video` extra): only a video needs it
    except ImportError:  # an install without the video library: say so, do not crash
        raise UnsupportedImage(
            f"the {name} is a video, and this install cannot read videos: {install_hint('video')}"
        ) from None
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:
        raise UnsupportedImage(f"the {name} is not a video we can read ({exc})") from None
    if not container.streams.video:
        container.close()
        raise UnsupportedImage(f"the {name} has no video track")
    return container


def video_format(container) -> str:
    names = container.format.name.split(",")
    if "webm" in names or "matroska" in names:
        return "WEBM"
    return "MOV" if "mov" in names and "mp4" not in names else "MP4"
