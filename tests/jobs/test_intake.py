"""What the bot learns of a content from its header before it queues the job: its cost (frames)
and, for a still, its upright size (the shape bucket the dispatcher batches it by)."""

import io

import pytest
from PIL import Image

from bot.engine.params import ImageLimits, InvalidParams, StyleParams
from bot.jobs.intake import ContentMeasure, check_inputs, measure_content
from bot.media.encoding import encode_clip
from tests.cli.helpers import stylebot
from tests.conftest import gradient_image, moving_clip, png_bytes


def test_a_phone_photo_turned_by_its_exif_is_measured_upright():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": stored 400x300, seen 300x400
    gradient_image(400, 300).save(out, "JPEG", exif=exif)
    measured = measure_content(out.getvalue(), StyleParams(), ImageLimits())
    assert measured == ContentMeasure(cost=1, shape=(300, 400))
    assert measure_content(png_bytes(gradient_image(400, 300)), StyleParams(), ImageLimits()) == (
        ContentMeasure(cost=1, shape=(400, 300))
    )


def test_a_moving_picture_or_an_unreadable_one_has_no_shape():
    clip = measure_content(encode_clip(moving_clip(6), "gif"), StyleParams(), ImageLimits())
    assert clip.cost == 6 and clip.shape is None
    assert measure_content(b"not a picture", StyleParams(), ImageLimits()) == ContentMeasure()


def test_a_style_too_small_to_carry_a_style_is_refused_in_the_bot_and_on_the_command_line(
    tmp_path,
):
    """Issue 48: a 4x4 style picture painted a red wash for 100 s; it is refused from its header,
    in the same one line as a content that small, here and by `stylebot stylize` (exit 2, before
    torch loads)."""
    content, tiny = png_bytes(gradient_image(64, 48)), png_bytes(gradient_image(4, 4))
    names = ["content image", "style image"]
    with pytest.raises(InvalidParams, match=r"style image is 4x4: too small to carry a style"):
        check_inputs([content, tiny], names, ImageLimits(), StyleParams(size=64))
    assert check_inputs(
        [content, png_bytes(gradient_image(16, 16))], names, ImageLimits(), StyleParams(size=64)
    ) == ContentMeasure(cost=1, shape=(64, 48))
    (tmp_path / "c.png").write_bytes(content)
    (tmp_path / "s.png").write_bytes(tiny)
    done = stylebot("stylize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", "o.png")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"style image {tmp_path / 's.png'} is 4x4: too small to carry a style" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
