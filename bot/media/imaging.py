"""Bytes <-> PIL images: probe, decode, orient, resize and encode. Pillow and NumPy only, no torch:
the bot process uses this module and never imports torch.

Every refusal is an ImageError subclass whose message a person understands.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from bot.engine.params import MAX_ASPECT, ImageLimits, fit_size

ENCODE_FORMATS = ("png", "jpeg", "webp")


class ImageError(ValueError):
    """An image was refused; str(error) is the reason for a person."""


class EmptyImage(ImageError):
    pass


class ImageTooLarge(ImageError):
    """The file has too many bytes."""


class TooManyPixels(ImageError):
    """The header declares more pixels than allowed (a decompression bomb, or just too big)."""


class UnsupportedImage(ImageError):
    """Not an image, or a format we do not take."""


class CorruptImage(ImageError):
    """The header was fine but the pixel data could not be decoded."""


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def decode(data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "image") -> Image.Image:
    """Bytes to an upright RGB image (first frame of an animation, alpha on white)."""
    width, height, fmt = check_header(data, limits, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            image.seek(0)
            turn = TRANSPOSE.get(header_orientation(image) or 1)
            image.load()
            if turn is not None:  # as upright_size says, from the header alone
                image = image.transpose(turn)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptImage(
                f"the {name} ({fmt}, {width}x{height}) is damaged and cannot be decoded: {exc}"
            ) from None
    return to_rgb(image)


def check_header(
    data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "image"
) -> tuple[int, int, str]:
    """Every refusal `decode` makes before it decodes: empty, too many bytes, and `probe`'s.
    Returns (width, height, format) as stored (before the EXIF orientation)."""
    if not data:
        raise EmptyImage(f"the {name} is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(
            f"the {name} is {_megabytes(len(data))}; the limit is {_megabytes(limits.max_bytes)}"
        )
    return probe(data, limits, name=name)


def probe(
    data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "image"
) -> tuple[int, int, str]:
    """Read only the header: (width, height, format). Refuses what `decode` would refuse by size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise TooManyPixels(
                f"the {name} declares an enormous pixel count; at most {limits.max_pixels:,} pixels are allowed"
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UnsupportedImage(
                f"the {name} is not an image we can read ({_reason(exc)}); use {limits.formats_text()}"
            ) from None
    fmt = image.format or "unknown"
    if fmt not in limits.allowed_formats:
        raise UnsupportedImage(f"the {name} is {fmt}; allowed formats are {limits.formats_text()}")
    width, height = image.size
    if width < 1 or height < 1:
        raise CorruptImage(f"the {name} has no pixels ({width}x{height})")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise UnsupportedImage(
            f"the {name} is {width}x{height}, too thin: the longest side may be at most "
            f"{MAX_ASPECT} times the shortest"
        )
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"the {name} is {width}x{height} = {width * height:,} pixels; at most {limits.max_pixels:,} are allowed"
        )
    return width, height, fmt


EXIF_ORIENTATION = 0x0112
TURNED = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter (decode swaps its sides)
TRANSPOSE = {  # EXIF orientation -> what makes the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def header_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation of an opened picture, read from what opening it read: never its
    pixels. Pillow's getexif() on a PNG decodes the whole picture to look for an eXIf chunk after
    the pixel data (a 117 KB 6000x6000 PNG: 437 ms and 137 MB); only a chunk before them counts
    here, for upright_size and decode alike. A damaged EXIF block counts as none."""
    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            if not raw:
                return None
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = image.getexif()
        return exif.get(EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 (Pillow raises many kinds for a damaged block)
        return None


def upright_size(
    data: bytes, limits: ImageLimits = ImageLimits(), *, name: str = "image"
) -> tuple[int, int]:
    """The size `decode` gives the picture (its EXIF orientation applied), from its header only.
    Raises ImageError as `check_header` does."""
    width, height, _ = check_header(data, limits, name=name)
    orientation = header_orientation(Image.open(io.BytesIO(data)))
    return (height, width) if orientation in TURNED else (width, height)


def _reason(exc: Exception) -> str:
    return (
        "unrecognised data"
        if isinstance(exc, UnidentifiedImageError)
        else str(exc) or exc.__class__.__name__
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white, 16-bit scaled to 8-bit."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")


def resize(image: Image.Image, max_side: int) -> Image.Image:
    size = fit_size(*image.size, max_side)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str = "png", *, quality: int = 95) -> bytes:
    fmt = fmt.lower().replace("jpg", "jpeg")
    if fmt not in ENCODE_FORMATS:
        raise ValueError(f"cannot encode {fmt!r}; use one of {', '.join(ENCODE_FORMATS)}")
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=6)
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def encode_to_fit(image: Image.Image, limit_bytes: int) -> tuple[bytes, str]:
    """PNG if it fits in `limit_bytes`, else JPEG or WebP at the highest quality that fits
    (JPEG first at each quality); smaller dimensions only if even quality 30 does not fit."""
    png = encode(image, "png")
    if len(png) <= limit_bytes:
        return png, "png"
    smallest = png
    for quality in (95, 90, 85, 80, 70, 60, 50, 40, 30):
        for fmt in ("jpeg", "webp"):
            data = encode(image, fmt, quality=quality)
            if len(data) <= limit_bytes:
                return data, fmt
            smallest = min(smallest, data, key=len)
    scale = math.sqrt(limit_bytes / len(smallest)) * 0.9
    smaller = image.resize(
        fit_size(*image.size, max(16, int(max(image.size) * scale))), Image.Resampling.LANCZOS
    )
    return encode_to_fit(smaller, limit_bytes)
