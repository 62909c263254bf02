"""Small files that would cost much to decode: what an attacker uploads. Each is written by hand,
byte by byte, so that it is tiny however large the work it declares."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import numpy as np


def gif_of_tiny_frames(screen: int, frames: int, *, delay_cs: int = 2) -> bytes:
    """A GIF whose logical screen is `screen` x `screen` and whose `frames` frames are 1x1 each:
    a few bytes a frame, a whole canvas to composite for each."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0x80, 0, 0))
    out += b"\x00\x00\x00\xff\xff\xff"  # a global palette of 2 colours
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for i in range(frames):
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"
        out += _gif_image(i % screen, 0, 1, 1)
    return bytes(out + b"\x3b")


def gif_with_a_frame_placed_at(screen: int, x: int, y: int) -> bytes:
    """A two-frame GIF of `screen` x `screen` whose second frame lies at (x, y): Pillow grows its
    canvas to hold it."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0x80, 0, 0))
    out += b"\x00\x00\x00\xff\xff\xff"
    for left, top in ((0, 0), (x, y)):
        out += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
        out += _gif_image(left, top, 1, 1)
    return bytes(out + b"\x3b")


def _gif_image(x: int, y: int, width: int, height: int) -> bytes:
    # LZW, minimum code size 2: clear (4), colour 1, end (5) -> one pixel of colour 1
    return b"\x2c" + struct.pack("<HHHHB", x, y, width, height, 0) + b"\x02\x02\x4c\x01\x00"


def apng_of_tiny_frames(side: int, frames: int) -> bytes:
    """An APNG of `side` x `side` (1-bit grey: its first picture compresses to almost nothing)
    and `frames` frames of 1x1 after it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
    out += chunk(b"acTL", struct.pack(">II", frames, 0))
    sequence = 0
    for i in range(frames):
        width = height = side if i == 0 else 1
        out += chunk(
            b"fcTL", struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 2, 100, 0, 0)
        )
        sequence += 1
        if i == 0:
            out += chunk(b"IDAT", zlib.compress(row * side, 9))
        else:
            out += chunk(b"fdAT", struct.pack(">I", sequence) + zlib.compress(b"\x00\x80", 9))
            sequence += 1
    return out + chunk(b"IEND", b"")


def mp4_at(rate: int, frames: int, side: int = 64) -> bytes:
    """An MP4 of `frames` plain frames at `rate` frames a second (a grey square moving)."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(rate))
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast"}
        for i in range(frames):
            picture = np.full((side, side, 3), 40, np.uint8)
            picture[:, (i * 3) % side : (i * 3) % side + 8] = 220
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
