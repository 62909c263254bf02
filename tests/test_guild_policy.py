"""Server policy without Discord: defaults, caps and their notes, requests, channels (cooldowns: tests/jobs/test_cooldown.py)."""

import pytest

from bot.engine.params import MAX_TYPED_SEED, InvalidParams, StyleParams
from bot.guild_policy import (
    GuildSettings,
    Request,
    channel_allowed,
    describe,
    params_again,
    params_for,
)


def test_the_engine_owns_the_defaults():
    settings = GuildSettings()
    params, summary = params_for(Request(), settings)
    engine = StyleParams()
    assert (params.size, params.steps, params.strength, params.optimizer) == (
        engine.size,
        engine.steps,
        engine.strength,
        engine.optimizer,
    )
    assert summary.notes == () and f"{engine.final_steps} steps" in summary.text


def test_caps_clamp_and_say_so():
    settings = GuildSettings(max_size=256, max_steps=50, size=128, steps=20)
    params, summary = params_for(Request(size=1024, steps=400), settings)
    assert params.size == 256 and params.steps == 50
    assert summary.notes == (
        "size capped at 256 px by this server",
        "steps capped at 50 by this server",
    )
    params, summary = params_for(Request(size=200), settings)
    assert params.size == 200 and params.steps == 20 and summary.notes == ()


def test_raw_weights_of_the_server_unless_the_member_asks_for_a_strength():
    settings = GuildSettings(content_weight=1.0, style_weight=1000.0)
    params, summary = params_for(Request(), settings)
    assert params.raw_weights and "α 1 β 1000" in summary.text
    params, summary = params_for(Request(strength=2.0), settings)
    assert not params.raw_weights and params.strength == 2.0 and "strength 2" in summary.text


@pytest.mark.parametrize(
    "request_, message",
    [
        (Request(style_scale=4.0), "style scale"),
        (Request(seed=-1), "seed"),
        (Request(size=48), "size"),
        (Request(steps=0), "steps"),
        (Request(strength=float("inf")), "strength"),
        (Request(optimizer="sgd"), "optimizer"),
        (Request(preserve_colors="sepia"), "preserve colors"),
    ],
)
def test_requests_outside_the_declared_ranges_are_refused(request_, message):
    with pytest.raises(InvalidParams, match=message):
        params_for(request_, GuildSettings())


def test_channel_allow_list():
    assert channel_allowed(GuildSettings(), 5)
    assert channel_allowed(GuildSettings(allowed_channels=(5, 6)), 6)
    assert not channel_allowed(GuildSettings(allowed_channels=(5, 6)), 7)
    assert "<#5>, <#6>" in describe(GuildSettings(allowed_channels=(5, 6)))


def test_a_servers_clip_limits_reach_the_job_and_are_checked():
    from bot.guild_policy import GuildSettings, Request, SettingsError, describe, params_for

    settings = GuildSettings(clip_frames=12, clip_seconds=3.0, clip_size=256)
    params, _ = params_for(Request(), settings)
    assert (params.clip_frames, params.clip_seconds, params.clip_size) == (12, 3.0, 256)
    assert "up to 12 frames, the first 3 s, at most 256 px" in describe(settings)
    for change, message in (
        ({"clip_frames": 0}, "clip frames must be between 1 and 300"),
        ({"clip_seconds": 0.1}, "clip seconds must be between 0.5 and 60"),
        ({"clip_size": 8192}, "the clip size must be between 64 and 4096"),
    ):
        with pytest.raises(SettingsError, match=message):
            settings.replace(**change)
    # a size cap below the clip size holds for clips too
    capped, _ = params_for(Request(), settings.replace(max_size=128, size=128))
    assert capped.clip_size == 128


def test_a_typed_minus_zero_reads_as_zero():
    from bot.presets import Preset

    _, summary = params_for(Request(strength=-0.0), GuildSettings())
    assert "strength 0 " in summary.text + " " and "-0" not in summary.text
    preset = Preset(name="calm", strength=-0.0)
    assert preset.describe() == "**calm** · strength 0"
    _, summary = params_for(preset.fill(Request()), GuildSettings())
    assert "-0" not in summary.text


def test_the_seed_is_settled_here_and_only_the_dice_draw_a_new_one():
    """Issue 48: a job's seed is drawn where it is settled (the row keeps it); a typed seed is
    kept; ➕ ➖ 🎨 🔍 keep the seed of the picture they start from, 🎲 alone draws another."""
    settings = GuildSettings()
    drawn = {params_for(Request(), settings)[0].seed for _ in range(20)}
    assert None not in drawn and len(drawn) > 1 and all(0 <= s <= MAX_TYPED_SEED for s in drawn)
    typed, _ = params_for(Request(seed=42), settings)
    assert typed.seed == 42
    for action in ("more", "less", "colours", "larger"):
        assert params_again(typed, action, settings, 1)[0].seed == 42, action
    dice = {params_again(typed, "seed", settings, 1)[0].seed for _ in range(20)}
    assert None not in dice and 42 not in dice and len(dice) > 1
