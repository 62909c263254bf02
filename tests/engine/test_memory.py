"""The memory plan: the figures it rests on, shorter histories, tiles, and the largest size."""

from bot.engine.memory import (
    MAX_SIZE,
    TILE_MARGIN,
    job_bytes,
    largest_size,
    plan,
    tile_margin,
    tiled_job_bytes,
)

GB = 2**30


def test_the_estimate_follows_the_pixels_and_the_optimiser_state():
    lbfgs = job_bytes(512 * 512, optimizer="lbfgs", history=100)
    adam = job_bytes(512 * 512, optimizer="adam", history=100)
    # L-BFGS's 100 pairs cost as much as the activations: 2.4 KB per pixel
    assert lbfgs - adam == 512 * 512 * (2400 - 24)
    assert job_bytes(1024 * 1024, optimizer="lbfgs", history=100) == 4 * lbfgs
    assert job_bytes(512 * 512, optimizer="adam", history=100, precision="bf16") < adam


def test_the_margin_covers_the_deepest_layers_receptive_field():
    # relu5_1 sees 156 px (stride 16): 70 px beyond a core's edge, on the 16 px grid 80
    assert TILE_MARGIN == tile_margin(("relu1_1", "relu5_1", "relu4_2")) == 80
    assert tile_margin(("relu4_2",)) == 48  # 84 px at stride 8
    assert tile_margin(("relu1_1",)) == 16
    assert tile_margin(("relu5_4",)) == 128


def test_a_plan_keeps_the_whole_picture_while_a_history_of_20_fits():
    assert plan(512, 512, None, optimizer="lbfgs") == plan(512, 512, 8 * GB, optimizer="lbfgs")
    whole = plan(512, 512, 8 * GB, optimizer="lbfgs")
    assert whole is not None and whole.tile is None and whole.history == 100
    # 1280 px: 100 pairs (8.9 GB) do not fit in 8 GB, 50 (7.0 GB) do; 2048 px: even 20 pairs
    # (14.8 GB) do not, tiles with 50 pairs do
    shorter = plan(1280, 1280, 8 * GB, optimizer="lbfgs")
    assert shorter is not None and shorter.tile is None and shorter.history == 50
    tiled = plan(2048, 2048, 8 * GB, optimizer="lbfgs")
    assert tiled is not None and tiled.tile is not None and tiled.history == 50
    assert tiled.bytes <= 8 * GB
    assert tiled.bytes == tiled_job_bytes(
        2048 * 2048, tiled.tile, TILE_MARGIN, optimizer="lbfgs", history=50
    )


def test_4096_px_fits_an_8_gb_card_in_tiles():
    for optimizer in ("lbfgs", "adam"):
        found = plan(4096, 4096, 8 * GB, optimizer=optimizer)
        assert found is not None and found.tile is not None and found.bytes <= 8 * GB
        print(f"8 GB, 4096 px, {optimizer}: tiles of {found.tile} px, history {found.history}")
    assert largest_size(8 * GB, 1, 1, optimizer="lbfgs") == MAX_SIZE


def test_a_forced_tile_size_is_kept_and_a_plan_that_cannot_fit_is_none():
    forced = plan(512, 384, None, optimizer="lbfgs", tile=128)
    assert forced is not None and forced.tile == 128 and forced.history == 100
    assert plan(512, 384, None, optimizer="lbfgs", tile=1024) == plan(
        512, 384, None, optimizer="lbfgs"
    )
    assert plan(512, 512, 10 * 2**20, optimizer="lbfgs") is None


def test_largest_size_is_the_last_size_a_plan_exists_for():
    budget = 300 * 2**20
    for ratio in ((1, 1), (16, 9)):
        side = largest_size(budget, *ratio, optimizer="lbfgs")
        assert side % 64 == 0 and side > 0

        def other(s, ratio=ratio):
            return max(1, round(s * min(ratio) / max(ratio)))

        assert plan(side, other(side), budget, optimizer="lbfgs") is not None
        assert plan(side + 64, other(side + 64), budget, optimizer="lbfgs") is None
    assert largest_size(1000, 1, 1, optimizer="lbfgs") == 0


def test_a_clips_plan_counts_its_frames_and_fits_its_passes_to_the_budget():
    import pytest

    from bot.engine.memory import CLIP_CHUNK, DoesNotFit, plan_job
    from bot.engine.params import StyleParams

    params = StyleParams()
    roomy = plan_job(params, 384, 288, frames=24, budget=None)
    assert roomy.chunk == CLIP_CHUNK and roomy.history == 100 and roomy.tile is None
    one_pass = plan_job(params, 384, 288, frames=24, budget=roomy.bytes)
    assert one_pass == roomy
    # less room: fewer frames per pass first, then a shorter history
    tighter = plan_job(params, 384, 288, frames=24, budget=roomy.bytes * 2 // 3)
    assert (tighter.chunk, tighter.history) < (roomy.chunk, roomy.history)
    assert tighter.bytes <= roomy.bytes * 2 // 3
    more_frames = plan_job(params, 384, 288, frames=48, budget=None)
    assert more_frames.bytes > roomy.bytes  # every frame's optimiser state is held
    with pytest.raises(DoesNotFit, match="send fewer frames"):
        plan_job(params, 384, 288, frames=24, budget=10 * 2**20)


def test_a_clip_takes_one_frame_a_pass_on_a_cpu_and_up_to_16_on_a_gpu():
    from bot.engine.memory import clip_chunk, plan_job
    from bot.engine.params import StyleParams

    assert (clip_chunk("cpu"), clip_chunk("cuda")) == (1, 16)
    assert (
        plan_job(StyleParams(), 64, 48, frames=8, budget=None, max_chunk=clip_chunk("cpu")).chunk
        == 1
    )
