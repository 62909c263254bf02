"""The fast default (issue 29): a job that names no steps runs its size's schedule (512 px: a
coarse level and the final one, about 100 full-size steps' work), and strength keeps its look on
every schedule through a balance written once, per schedule."""

import pytest
import torch

from bot.engine.devices import policy_for
from bot.engine.painting import Painting
from bot.engine.params import (
    COARSE_LEVEL_STRENGTH,
    DEFAULT_STEPS,
    STRENGTH_SCALE,
    StyleParams,
    describe_schedule,
)
from bot.engine.quality import trial
from bot.guild_policy import GuildSettings, Request, params_again, params_for
from tests.conftest import gradient_image, noise_image

FP32 = policy_for(torch.device("cpu"), "fp32")


def test_the_default_job_runs_the_fast_schedule():
    default = StyleParams()
    assert (default.size, default.levels, default.level_steps(default.levels)) == (512, 2, [80, 80])
    assert default.style_balance == pytest.approx(STRENGTH_SCALE * COARSE_LEVEL_STRENGTH)
    assert describe_schedule(default) == "80 steps after 1 coarser level of 80"
    # 1024 px keeps its schedule (3 levels of 300) and its balance
    large = StyleParams(size=1024)
    assert large.level_steps(large.levels) == [DEFAULT_STEPS] * 3
    assert large.style_balance == STRENGTH_SCALE
    # one level asked for, or a size below 512 px: today's schedule and balance
    for params in (StyleParams(pyramid_levels=1), StyleParams(size=384)):
        assert params.level_steps(params.levels) == [DEFAULT_STEPS]
        assert params.style_balance == STRENGTH_SCALE


def test_a_member_who_asks_for_n_steps_gets_n_at_the_final_size_with_the_schedules_balance():
    asked = StyleParams(steps=300)
    assert asked.level_steps(asked.levels) == [300, 300]  # "2 x 300": docs/engine.md measures it
    assert asked.style_balance == StyleParams().style_balance


def test_the_server_default_the_caps_and_the_larger_button_follow_the_schedule():
    params, summary = params_for(Request(), GuildSettings())
    assert params.final_steps == 80 and params.preview_every == 8
    assert "512 px · 80 steps after 1 coarser level of 80" in summary.text
    larger, summary = params_again(params, "larger", GuildSettings(), 1)
    assert larger.size == 1024 and larger.level_steps(3) == [300, 300, 300]
    assert larger.preview_every == 30 and "300 steps after 2 coarser levels" in summary.text
    capped, summary = params_again(params, "larger", GuildSettings(max_steps=200), 1)
    assert capped.final_steps == 200 and "steps capped at 200 by this server" in summary.notes


def test_progress_counts_every_levels_steps_and_their_work():
    """The bar and the ETA of a default job: 160 steps, a coarse step a quarter of the work."""
    seen = []
    painting = Painting(
        _vgg(), gradient_image(64, 48), [noise_image(32, 32)],
        StyleParams(size=64, pyramid_levels=2, steps=0, seed=0), FP32, on_progress=seen.append,
    )  # fmt: skip
    assert painting.level_step_counts == [80, 80]
    painting.step_alone()
    first = seen[-1]
    assert (first.step, first.total, first.levels) == (1, 160, 2)
    assert first.fraction == pytest.approx(0.25 / 100)


def test_strength_1_keeps_its_balance_on_a_schedule_with_a_coarse_level(random_vgg):
    """One level against two levels at strength 1, on a small case with random weights. The
    stated tolerance: the two-level run's style distance within 10 % of the one-level run's, and
    nearer to it than without the schedule's scale (which lands the coarse-to-fine run about 10 %
    closer to the style); its content distance at most 2 % further (the bar's bound)."""
    content, style = gradient_image(80, 60), noise_image(48, 48, seed=3)

    def distances(**params):
        base = StyleParams(size=80, steps=25, seed=0)
        quality = trial(random_vgg, content, style, base.replace(**params), FP32).quality
        return quality.style_distance, quality.content_distance

    one_level = distances(pyramid_levels=1)
    scaled = distances(pyramid_levels=2)
    unscaled = distances(pyramid_levels=2, strength=1 / COARSE_LEVEL_STRENGTH)
    figures = (one_level, scaled, unscaled)
    assert abs(scaled[0] / one_level[0] - 1) < 0.10, figures
    assert abs(scaled[0] - one_level[0]) < abs(unscaled[0] - one_level[0]), figures
    assert scaled[1] <= one_level[1] * 1.02, figures


def _vgg():
    from bot.engine.vgg import load_vgg19

    return load_vgg19("random")


def test_a_moving_pictures_previews_follow_its_own_schedule_not_the_stills():
    from bot.media.clips import clip_params

    still, _ = params_for(Request(), GuildSettings())  # 512 px: 80 final steps, a preview every 8
    moving, _ = clip_params(still)  # one level at the clip size: 300 steps
    assert still.preview_every == 8
    assert moving.levels == 1 and moving.final_steps == 300 and moving.preview_every == 30
    assert clip_params(still.replace(preview_every=0))[0].preview_every == 0  # none asked: none
