"""What the bot learns of a content from its header before it queues the job: its cost (frames)
and, for a still, its upright size (the shape bucket the dispatcher batches it by)."""

import io

from PIL import Image

from bot.engine.params import ImageLimits, StyleParams
from bot.jobs.intake import ContentMeasure, measure_content
from bot.media.encoding import encode_clip
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
