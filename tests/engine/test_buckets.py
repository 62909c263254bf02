"""Shape buckets (bot/media/buckets.py): which canvas a picture gets, and that a bucketed job
batches with its neighbours, comes back at its own shape and matches the job painted alone."""

import numpy as np
import pytest
import torch

from bot.engine.devices import policy_for
from bot.engine.painting import Painting
from bot.engine.params import StyleParams, fit_size
from bot.media.buckets import (
    MAX_STRETCH,
    bucket_sides,
    canvas,
    canvas_for,
    side_step,
)
from tests.conftest import gradient_image, noise_image
from tests.engine.test_painting import TOLERANCE, alone, together

# what members send (width, height as uploaded): phone photos both ways, screens, squares,
# screenshots, and odd crops
PHOTOS = [(4032, 3024), (3024, 4032), (1920, 1080), (1080, 1920), (1000, 1000), (1170, 2532),
          (1200, 800), (640, 427), (700, 500), (2048, 1536)]  # fmt: skip


def stretch(width: int, height: int) -> float:
    """How much the bucket stretches (> 0) or squeezes (< 0) the picture's short side."""
    return min(canvas(width, height)) / min(width, height) - 1


@pytest.mark.parametrize("size", [256, 512, 768, 1024])
def test_common_shapes_share_a_few_canvases_and_keep_their_longest_side(size):
    canvases = set()
    for photo in PHOTOS:
        width, height = fit_size(*photo, size)
        painted = canvas(width, height)
        canvases.add(painted)
        assert max(painted) == size  # the job's size: the style's scale is kept
        assert (painted[0] >= painted[1]) == (width >= height)  # landscape stays landscape
        assert abs(stretch(width, height)) <= MAX_STRETCH
        if painted != (width, height):
            assert min(painted) % side_step(size) == 0
    assert len(canvases) <= 8  # ten shapes of upload, at most eight shapes to paint


def test_exact_ratios_paint_at_their_own_shape_and_odd_ones_alone():
    assert canvas(512, 384) == (512, 384)  # 4:3 is a bucket
    assert canvas(288, 512) == (288, 512)  # 9:16 too
    assert canvas(512, 341) == (512, 352)  # 3:2 to its bucket, 3 % taller
    assert canvas(512, 461) == (512, 461)  # 10:9: more than MAX_STRETCH from 416 and from 512
    assert canvas(512, 100) == (512, 100)  # a strip: no bucket near
    assert bucket_sides(512) == sorted(set(bucket_sides(512)))


def test_only_stills_of_a_batching_worker_are_bucketed():
    assert canvas_for(512, 341, 1, True) == (512, 352)
    assert canvas_for(512, 341, 1, False) == (512, 341)
    assert canvas_for(512, 341, 24, True) == (512, 341)  # a clip is a batch of its own


def test_a_canvas_must_keep_the_jobs_size(random_vgg):
    policy = policy_for(torch.device("cpu"), "fp32")
    params = StyleParams(size=64, steps=1)
    with pytest.raises(ValueError, match="canvas"):
        Painting(random_vgg, gradient_image(64, 40), [noise_image(32, 32)], params, policy,
                 canvas=(48, 32))  # fmt: skip


def test_bucketed_jobs_of_near_shapes_batch_and_each_comes_back_at_its_own_shape(random_vgg):
    policy = policy_for(torch.device("cpu"), "fp32")
    params = StyleParams(size=64, steps=4, seed=1, pyramid_levels=1)
    style = noise_image(32, 32, seed=3)
    # 64x42 and 64x43 (3:2 and a crop of it) share the 64x40 bucket
    contents = [gradient_image(96, 63, seed=1), gradient_image(96, 65, seed=2)]
    shapes = [fit_size(*c.size, 64) for c in contents]
    canvases = [canvas_for(*s, 1, True) for s in shapes]
    assert shapes[0] != shapes[1] and canvases[0] == canvases[1]
    batched = [
        Painting(random_vgg, c, [style], params, policy, canvas=k)
        for c, k in zip(contents, canvases, strict=True)
    ]
    assert len({p.shape_key for p in batched}) == 1  # one VGG-19 pass for both
    assert together(batched) == []
    for painting, content, shape, bucket in zip(batched, contents, shapes, canvases, strict=True):
        assert painting.result().image.size == shape  # delivered at the member's shape
        single = alone(random_vgg, content, style, params, canvas=bucket)
        difference = (
            np.abs(
                np.asarray(painting.result().image, dtype=np.float64)
                - np.asarray(single.result().image, dtype=np.float64)
            ).mean()
            / 255
        )
        assert difference < TOLERANCE  # the same picture, batched or alone
    unbucketed = [Painting(random_vgg, c, [style], params, policy) for c in contents]
    assert len({p.shape_key for p in unbucketed}) == 2  # without buckets: two passes
