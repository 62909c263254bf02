"""Stopping a pyramid level once it has stopped improving, the work a run did, and the recolored
first image."""

import pytest
import torch

from bot.engine import colour
from bot.engine.params import CONVERGENCE_WINDOW, StyleParams
from bot.engine.progress import Convergence
from bot.engine.pyramid import initial_image
from bot.engine.transfer import stylize
from tests.conftest import gradient_image, noise_image


def test_a_level_converges_when_j_fell_less_than_the_tolerance_over_a_window():
    watch = Convergence(tolerance=0.01, window=10)
    # J halves every step for 12 steps, then falls by 0.05 % a step
    totals = [100.0 * 0.5**s for s in range(1, 13)]
    totals += [totals[-1] * 0.9995**s for s in range(1, 40)]
    stopped = [s for s, j in enumerate(totals, start=1) if watch.converged(1, s, j)]
    # the first step whose window of 10 lies wholly in the slow part
    assert stopped[0] == 12 + 10


def test_a_new_level_starts_a_new_window_and_sparse_reads_still_count():
    watch = Convergence(tolerance=0.01, window=10)
    assert not any(watch.converged(1, s, 1.0) for s in range(1, 10))
    assert watch.converged(1, 10 + 1, 1.0)  # flat for 10 steps: converged
    # level 2: read only every 7 steps (a GPU reads the loss every sync_interval seconds)
    assert not watch.converged(2, 7, 5.0)
    assert not watch.converged(2, 14, 4.0)  # no read a whole window earlier yet
    assert not watch.converged(2, 21, 3.99)  # 20 % better than at step 7
    assert watch.converged(2, 28, 3.985)  # 0.4 % better than at step 14


def test_tolerance_zero_never_stops_early():
    watch = Convergence(tolerance=0.0)
    assert not any(watch.converged(1, s, 1.0) for s in range(1, 100))


def test_a_converged_run_says_at_which_step_and_counts_what_it_did(random_vgg):
    content, style = gradient_image(48, 32), noise_image(32, 32, seed=3)
    params = StyleParams(size=48, steps=40, pyramid_levels=2, seed=1)
    seen = []
    full = stylize(random_vgg, content, [style], params)
    early = stylize(
        random_vgg, content, [style], params.replace(tolerance=0.2), on_progress=seen.append
    )
    assert full.steps == 80 and full.converged_at is None
    # J falls by less than 20 % over 10 steps long before 40 steps, at both levels
    assert CONVERGENCE_WINDOW < early.converged_at < 40
    assert early.steps < 80 - (40 - early.converged_at)
    # the progress bar moves on to the next level and ends full, with no time left
    assert [p.level for p in seen] == sorted(p.level for p in seen)
    assert seen[-1].step == seen[-1].total == 80 and seen[-1].eta == pytest.approx(0, abs=1e-6)
    assert len(seen) == early.steps and seen[-1].fraction == pytest.approx(1.0)
    assert all(a.fraction <= b.fraction for a, b in zip(seen, seen[1:], strict=False))


def test_the_work_done_counts_a_coarse_step_by_its_pixels(random_vgg):
    from bot.engine.devices import policy_for
    from bot.engine.painting import Painting

    painting = Painting(
        random_vgg, gradient_image(64, 64), [noise_image(32, 32)],
        StyleParams(size=64, steps=4, pyramid_levels=2, tolerance=0.0),
        policy_for(torch.device("cpu"), "fp32"),
    )  # fmt: skip
    done = []
    painting.run(lambda: done.append(painting.work_done))
    assert done == pytest.approx([0.25, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert painting.work == pytest.approx(5.0)
    assert painting.picture().size == (64, 64)


def test_the_recolored_start_has_the_styles_colours():
    content = colour.to_tensor(gradient_image(40, 40))
    style = colour.to_tensor(noise_image(30, 30, seed=5)) * torch.tensor([1.0, 0.3, 0.2]).view(
        1, 3, 1, 1
    )
    params = StyleParams(init="recolored", start_noise=0.0)  # the recolouring alone
    start = initial_image(content, [style], params, torch.Generator())
    assert start.shape == content.shape
    mean = start.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, style.mean(dim=(0, 2, 3)), atol=0.03)
    assert not torch.allclose(mean, content.mean(dim=(0, 2, 3)), atol=0.03)
    # the picture is still the content's: same layout, pixel for pixel correlated
    corr = torch.corrcoef(torch.stack([start.mean(1).flatten(), content.mean(1).flatten()]))
    assert corr[0, 1] > 0.7


def test_the_start_is_the_content_plus_a_smooth_noise_drawn_from_the_seed():
    """Issue 48: what the seed varies. The same seed, the same start; another seed, another; the
    noise is smooth (it moves where colours settle, it leaves no grain) and within its amplitude;
    0 is the content itself."""
    content = colour.to_tensor(gradient_image(256, 192))  # cells of 16 px
    params = StyleParams(start_noise=0.2)

    def start(seed: int, p: StyleParams = params) -> torch.Tensor:
        return initial_image(content, [], p, torch.Generator().manual_seed(seed))

    assert torch.equal(start(7), start(7))
    moved = start(8) - start(7)
    assert moved.abs().mean() > 0.03
    assert (start(7) - content).abs().max() <= 0.2 * 1.35  # bicubic's overshoot at most
    neighbours = (moved[..., 1:] - moved[..., :-1]).abs().mean()
    assert neighbours < moved.abs().mean() / 5  # smooth: far less change pixel to pixel
    assert torch.equal(start(7, params.replace(start_noise=0.0)), content)


def test_the_next_level_starts_from_the_coarse_painting_with_the_contents_detail():
    import torch.nn.functional as F

    from bot.engine.painting import next_level_start

    content = colour.to_tensor(gradient_image(64, 48, seed=2))
    coarse_content = F.interpolate(content, size=(24, 32), mode="area")
    # a coarse level that kept its content exactly gives the full-size content back
    start = next_level_start(coarse_content, coarse_content, content)
    assert torch.allclose(start, content, atol=1e-5)
    # a painted coarse level keeps its painting (what an enlargement shows) and gains the detail
    painted = (coarse_content + 0.2 * torch.rand(coarse_content.shape)).clamp(0, 1)
    start = next_level_start(painted, coarse_content, content)
    enlarged = F.interpolate(painted, size=(48, 64), mode="bilinear", align_corners=False)
    smooth = F.avg_pool2d(start, 4)
    assert (smooth - F.avg_pool2d(enlarged, 4)).abs().mean() < 0.02
    detail = content - F.interpolate(coarse_content, size=(48, 64), mode="bilinear")
    assert (start - enlarged - detail).abs().mean() < 0.01  # only clamping differs


def test_the_bar_counts_work_not_steps(random_vgg):
    seen = []
    params = StyleParams(size=64, steps=4, coarse_steps=8, pyramid_levels=2, tolerance=0.0)
    result = stylize(
        random_vgg, gradient_image(64, 64), [noise_image(32, 32)], params, on_progress=seen.append
    )
    assert result.steps == 12 and [p.total for p in seen] == [12] * 12
    # 8 steps at 32 px are 2 full-size steps' work, then 4 at 64 px: 6 in all
    assert [p.fraction for p in seen] == pytest.approx([k / 24 for k in range(1, 9)] + [
        (2 + k) / 6 for k in range(1, 5)
    ])  # fmt: skip
    assert seen[7].step == 8 and seen[7].level == 1 and seen[8].level == 2


def test_the_eta_leaves_the_first_steps_warm_up_out(monkeypatch):
    """A first step of 60 s (the style's features, allocations) and 1 s a step after it: the ETA
    after step 4 of 10 is 6 s, not 6 x 63 / 4."""
    import torch

    from bot.engine import progress
    from bot.engine.devices import policy_for

    clock = iter([0.0, 60.0, 61.0, 62.0, 63.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    seen = []
    reporter = progress.Reporter(
        StyleParams(size=32, steps=10), [10], [1], policy_for(torch.device("cpu"), "fp32"),
        on_progress=seen.append, should_cancel=None,
    )  # fmt: skip
    for step in range(1, 5):
        reporter.after_step({"total": torch.tensor(1.0)}, 1, step, preview=lambda: None)
    assert seen[0].eta is None  # no pace yet after the first step
    assert [round(p.eta, 6) for p in seen[1:]] == [8.0, 7.0, 6.0]
