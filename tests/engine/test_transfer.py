import numpy as np
import pytest
import torch
from PIL import Image

from bot.engine import colour
from bot.engine.objective import Objective
from bot.engine.params import MAX_TYPED_SEED, InvalidParams, StyleParams
from bot.engine.progress import Cancelled, NonFiniteLoss
from bot.engine.transfer import stylize
from tests.conftest import gradient_image, noise_image

SMALL = StyleParams(size=32, steps=6, seed=0)  # one seed: one start for every run compared


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_a_short_run_lowers_j(random_vgg):
    content, style = gradient_image(40, 32), noise_image(32, 32, seed=3)
    seen = []
    result = stylize(random_vgg, content, [style], SMALL.replace(steps=15), on_progress=seen.append)
    totals = [p.losses["total"] for p in seen]
    assert len(totals) == 15 and result.steps == 15
    assert totals[-1] < 0.5 * totals[0]
    # J of the returned image is below J of the starting image
    objective = Objective(
        random_vgg,
        SMALL,
        colour.to_tensor(content.resize(result.image.size)),
        [colour.to_tensor(style.resize((32, 32)))],
        (1.0,),
        None,
    )
    j_start = objective(colour.to_tensor(content.resize(result.image.size)))[0].item()
    j_end = objective(colour.to_tensor(result.image))[0].item()
    assert j_end < j_start


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_output_keeps_aspect_ratio(random_vgg, optimizer):
    result = stylize(
        random_vgg,
        gradient_image(90, 45),
        [noise_image(20, 30)],
        SMALL.replace(optimizer=optimizer),
    )
    assert result.image.size == (32, 16)


def test_same_seed_same_image(random_vgg):
    params = SMALL.replace(init="noise", seed=7)
    content, style = gradient_image(32, 32), noise_image(32, 32)
    a = stylize(random_vgg, content, [style], params).image
    b = stylize(random_vgg, content, [style], params).image
    c = stylize(random_vgg, content, [style], params.replace(seed=8)).image
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()
    # no seed given: one is drawn, reported, and paints the same picture again
    free = stylize(random_vgg, content, [style], SMALL.replace(init="content+noise", steps=1))
    again = stylize(
        random_vgg, content, [style], SMALL.replace(init="content+noise", steps=1, seed=free.seed)
    )
    assert 0 <= free.seed <= MAX_TYPED_SEED and again.image.tobytes() == free.image.tobytes()


def test_cancel_stops_within_one_step(random_vgg):
    seen = []
    with pytest.raises(Cancelled):
        stylize(
            random_vgg,
            gradient_image(32, 32),
            [noise_image(32, 32)],
            SMALL.replace(steps=50),
            on_progress=seen.append,
            should_cancel=lambda: len(seen) >= 3,
        )
    assert len(seen) == 3


def test_progress_reports_every_step_with_previews(random_vgg):
    seen = []
    stylize(
        random_vgg,
        gradient_image(32, 32),
        [noise_image(32, 32)],
        SMALL.replace(steps=4, preview_every=2, pyramid_levels=2),
        on_progress=seen.append,
    )
    assert [p.step for p in seen] == list(range(1, 9))
    assert all(p.total == 8 for p in seen)
    assert [p.level for p in seen] == [1] * 4 + [2] * 4
    assert [p.preview is not None for p in seen] == [False, True] * 4
    assert seen[-1].preview.size == (32, 32)
    assert seen[-1].eta == pytest.approx(0, abs=1e-6) and seen[0].elapsed > 0
    assert set(seen[0].losses) == {"content", "style", "total"}


def test_colour_preservation_keeps_the_contents_chroma(random_vgg):
    # colours inside the RGB gamut's middle, so that clamping to [0, 1] cannot move the chroma
    content = Image.fromarray(
        (np.asarray(gradient_image(32, 32, seed=1)) * 0.5 + 64).astype(np.uint8)
    )
    style = noise_image(32, 32, seed=2, tint=(0.1, 0.3, 1.0))  # strongly blue
    params = SMALL.replace(steps=10, strength=5.0)

    def chroma_error(image):
        ours = colour.rgb_to_ycbcr(colour.to_tensor(image))[:, 1:]
        theirs = colour.rgb_to_ycbcr(colour.to_tensor(content))[:, 1:]
        return (ours - theirs).abs().mean().item() * 255

    kept = chroma_error(
        stylize(random_vgg, content, [style], params.replace(preserve_colors="luminance")).image
    )
    free = chroma_error(stylize(random_vgg, content, [style], params).image)
    assert kept < 0.5, kept
    assert free > 10, free


def test_previews_at_coarse_levels_with_luminance_transfer(random_vgg):
    seen = []
    params = SMALL.replace(steps=2, pyramid_levels=2, preview_every=1, preserve_colors="luminance")
    stylize(
        random_vgg, gradient_image(32, 32), [noise_image(32, 32)], params, on_progress=seen.append
    )
    assert [p.preview.size for p in seen] == [(16, 16), (16, 16), (32, 32), (32, 32)]


def test_colour_matching_moves_the_style_palette_to_the_contents():
    content = colour.to_tensor(gradient_image(32, 32, seed=1))
    style = colour.to_tensor(noise_image(32, 32, seed=2, tint=(0.1, 0.3, 1.0)))
    matched = colour.match_colors(style, content)
    assert torch.allclose(matched.mean((2, 3)), content.mean((2, 3)), atol=0.03)
    assert not torch.allclose(style.mean((2, 3)), content.mean((2, 3)), atol=0.1)


def test_blend_zero_one_equals_the_single_style(random_vgg):
    content, first, second = (
        gradient_image(32, 32),
        noise_image(32, 32, seed=1),
        noise_image(24, 32, seed=2),
    )
    blended = stylize(
        random_vgg, content, [first, second], SMALL.replace(style_blend=(0.0, 1.0))
    ).image
    single = stylize(random_vgg, content, [second], SMALL).image
    assert blended.tobytes() == single.tobytes()
    with pytest.raises(InvalidParams, match="2 style images"):
        stylize(random_vgg, content, [first, second], SMALL.replace(style_blend=(1.0,)))


def test_thin_images(random_vgg):
    # a coarse pyramid level too small for relu5_1 is left out; the final size must fit
    seen = []
    result = stylize(
        random_vgg,
        gradient_image(64, 40),
        [noise_image(300, 5)],
        SMALL.replace(steps=2, pyramid_levels=2),
        on_progress=seen.append,
    )
    assert result.image.size == (32, 20) and seen[-1].total == 2
    with pytest.raises(InvalidParams, match="too thin"):
        stylize(random_vgg, gradient_image(200, 16), [noise_image(32, 32)], SMALL)


def test_a_speck_is_refused_not_enlarged(random_vgg):
    for width, height in ((1, 1), (15, 400)):
        with pytest.raises(InvalidParams, match=f"is {width}x{height}: too small to paint"):
            stylize(random_vgg, gradient_image(width, height), [noise_image(32, 32)], SMALL)


def test_strength_zero_keeps_the_content(random_vgg):
    content = gradient_image(32, 32)
    # the content start itself (no seed noise): a few steps of a content-only J keep it exactly
    params = SMALL.replace(strength=0.0, start_noise=0.0)
    result = stylize(random_vgg, content, [noise_image(32, 32)], params)
    assert np.abs(pixels(result.image) - pixels(content)).max() <= 1


def test_style_scale_and_cache(random_vgg):
    cache = {}
    params = SMALL.replace(steps=2, style_scale=0.5)
    stylize(random_vgg, gradient_image(32, 32), [noise_image(64, 64)], params, style_cache=cache)
    assert len(cache) == 1
    (grams,) = cache.values()
    assert set(grams) == set(params.style_layers)
    assert grams["relu1_1"].shape == (64, 64)
    stylize(random_vgg, gradient_image(32, 32), [noise_image(64, 64)], params, style_cache=cache)
    assert len(cache) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(size=8), "size"),
        (dict(steps=-1), "steps"),
        (dict(content_weight=1.0), "both"),
        (dict(style_layers=("relu9_9",)), "unknown layer"),
        (dict(style_layer_weights=(1.0,)), "style layer weights"),
        (dict(optimizer="sgd"), "optimizer"),
        (dict(pyramid_levels=3, size=32), "pyramid"),
        (dict(strength=float("inf")), "strength must be a finite number"),
        (dict(strength=float("nan")), "strength must be a finite number"),
        (
            dict(style_layer_weights=(float("inf"), 1.0, 1.0, 1.0, 1.0)),
            "style layer weight must be a finite",
        ),
        (dict(learning_rate=float("inf")), "learning rate must be a finite"),
        (dict(tv_weight=float("nan")), "tv weight must be a finite"),
        (dict(style_blend=(1.0, float("inf"))), "style blend weight must be a finite"),
    ],
)
def test_invalid_params_have_clear_messages(change, message):
    with pytest.raises(InvalidParams, match=message):
        SMALL.replace(**change).validate()


def test_large_sizes_go_coarse_to_fine_by_default(random_vgg):
    from bot.engine.devices import policy_for
    from bot.engine.painting import Painting
    from bot.engine.params import AUTO_PYRAMID_FROM

    assert AUTO_PYRAMID_FROM == 512
    expected = {256: 1, 500: 1, 512: 2, 576: 2, 768: 2, 1024: 3, 1536: 3, 2048: 4, 4096: 5}
    assert {size: StyleParams(size=size).levels for size in expected} == expected
    assert StyleParams(size=2048, pyramid_levels=1).levels == 1  # asked for: kept
    with pytest.raises(InvalidParams, match="pyramid levels"):
        StyleParams(pyramid_levels=6).validate()
    painting = Painting(
        random_vgg, gradient_image(40, 30), [noise_image(32, 32)], StyleParams(size=2048, steps=1),
        policy_for(torch.device("cpu"), "fp32"),
    )  # fmt: skip
    assert painting.level_dims == [(256, 192), (512, 384), (1024, 768), (2048, 1536)]


def test_params_round_trip_through_a_dict():
    params = SMALL.replace(style_blend=(1.0, 2.0), style_layers=("relu1_1",))
    assert StyleParams.from_dict(params.to_dict()) == params
    import json

    assert StyleParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    with pytest.raises(InvalidParams, match="unknown"):
        StyleParams.from_dict({"colour": 1})


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_loss_that_overflows_fails_instead_of_returning_a_picture(random_vgg, optimizer):
    params = SMALL.replace(
        content_weight=1.0, style_weight=1e300, optimizer=optimizer
    )  # finite, but not in fp32
    with pytest.raises(NonFiniteLoss, match="lower the strength"):
        stylize(random_vgg, gradient_image(32, 32), [noise_image(32, 32)], params)
