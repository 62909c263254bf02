import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bot.engine import colour
from bot.engine.params import ImageLimits, fit_size
from bot.media import imaging
from tests.conftest import gradient_image, noise_image, png_bytes


def png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height pixels."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1))))
    start = 8 + 8  # signature, then IHDR length and type
    data[start : start + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : start + 13]))
    data[start + 13 : start + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_decodes_png_to_rgb():
    image = imaging.decode(png_bytes(noise_image(7, 5)))
    assert image.mode == "RGB" and image.size == (7, 5)


def test_empty_file():
    with pytest.raises(imaging.EmptyImage, match="empty"):
        imaging.decode(b"", name="content image")


def test_too_many_bytes():
    data = png_bytes(noise_image(64, 64))
    with pytest.raises(imaging.ImageTooLarge, match="limit is"):
        imaging.decode(data, ImageLimits(max_bytes=1000))


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(imaging.TooManyPixels, match="pixels"):
        imaging.decode(png_declaring(100_000, 100_000))
    with pytest.raises(imaging.TooManyPixels, match="5000x5000"):
        imaging.decode(png_declaring(5000, 5000), ImageLimits(max_pixels=1_000_000))
    # probe refuses as well, without decoding
    with pytest.raises(imaging.TooManyPixels):
        imaging.probe(png_declaring(5000, 5000), ImageLimits(max_pixels=1_000_000))


def test_not_an_image():
    with pytest.raises(imaging.UnsupportedImage, match="not an image"):
        imaging.decode(b"hello, this is text", name="style image")


def test_format_not_allowed():
    with pytest.raises(imaging.UnsupportedImage, match="PPM"):
        imaging.decode(png_bytes(noise_image(4, 4), "PPM"))


def test_truncated_file_is_corrupt():
    data = png_bytes(noise_image(64, 64))
    with pytest.raises(imaging.CorruptImage, match="damaged"):
        imaging.decode(data[: len(data) // 2])


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    image.paste((0, 0, 255), (10, 0, 20, 10))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = imaging.decode(png_bytes(image, "JPEG", exif=exif, quality=95))
    assert decoded.size == (10, 20)
    top = np.asarray(decoded)[2, 5]
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert imaging.decode(png_bytes(rgba)).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert imaging.decode(png_bytes(half)).getpixel((0, 0)) == (127, 127, 127)
    la = Image.new("LA", (4, 4), (0, 0))
    assert imaging.decode(png_bytes(la)).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency():
    p = Image.new("P", (4, 4), 0)
    p.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    p.info["transparency"] = 0
    assert imaging.decode(png_bytes(p, transparency=0)).getpixel((0, 0)) == (255, 255, 255)
    opaque = Image.new("P", (4, 4), 0)
    opaque.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    assert imaging.decode(png_bytes(opaque)).getpixel((0, 0)) == (10, 20, 30)


def test_cmyk_grey_and_16_bit():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red
    r, g, b = imaging.decode(png_bytes(cmyk, "JPEG", quality=100)).getpixel((0, 0))
    assert r > 200 and g < 60 and b < 60
    assert imaging.decode(png_bytes(Image.new("L", (4, 4), 77))).getpixel((0, 0)) == (77, 77, 77)
    sixteen = Image.new("I;16", (4, 4), 65535 // 2)
    value = imaging.decode(png_bytes(sixteen)).getpixel((0, 0))
    assert value[0] == value[1] == value[2] and 125 <= value[0] <= 130


def test_animated_image_uses_the_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    r, g, b = imaging.decode(data).getpixel((0, 0))
    assert r > 200 and b < 60


def test_fit_size_keeps_the_aspect_ratio():
    assert fit_size(400, 200, 100) == (100, 50)
    assert fit_size(30, 90, 300) == (100, 300)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_round_trip(fmt):
    image = noise_image(16, 12)
    decoded = imaging.decode(imaging.encode(image, fmt))
    assert decoded.size == (16, 12)
    if fmt == "png":
        assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_encode_to_fit_falls_back_to_jpeg_or_webp():
    image = noise_image(256, 256)
    data, fmt = imaging.encode_to_fit(image, 10_000_000)
    assert fmt == "png"
    for limit in (60_000, 20_000, 3_000):
        data, fmt = imaging.encode_to_fit(image, limit)
        assert fmt in ("jpeg", "webp") and len(data) <= limit
        assert imaging.decode(data).size[0] <= 256


def test_colour_space_round_trip():
    import torch

    rgb = torch.rand(1, 3, 5, 5)
    assert torch.allclose(colour.ycbcr_to_rgb(colour.rgb_to_ycbcr(rgb)), rgb, atol=1e-5)


def test_a_pngs_orientation_comes_from_its_header_and_decode_agrees():
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = png_bytes(gradient_image(40, 20), "PNG", exif=exif)  # the eXIf chunk precedes IDAT
    assert imaging.upright_size(turned) == (20, 40)
    assert imaging.decode(turned).size == (20, 40)


def test_upright_size_never_decodes_the_pixels(monkeypatch):
    """A 6000x6000 PNG of a few KB: its size from the header, not 137 MB of pixels."""
    from PIL import PngImagePlugin

    big = png_bytes(Image.new("RGB", (6000, 6000), (200, 30, 30)))
    assert len(big) < 200_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert imaging.upright_size(big) == (6000, 6000)
