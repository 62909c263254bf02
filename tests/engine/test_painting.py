"""Jobs stepped together in one batch take the steps they take alone; one job's cancel or
failure leaves the others untouched."""

import numpy as np
import pytest
import torch

from bot.engine.devices import policy_for
from bot.engine.painting import Painting, step_together
from bot.engine.params import COARSE_LEVEL_STRENGTH, StyleParams
from bot.engine.progress import Cancelled, NonFiniteLoss
from tests.conftest import gradient_image, noise_image

# Why these tolerances. A batched convolution may add in another order than a single one, so a
# job's gradient in a batch differs from its gradient alone by float32 rounding: measured 5e-7 of
# its largest value (GRADIENT_TOLERANCE allows 20x that). Over many steps the optimiser can
# amplify such differences: with random weights, moving the start image by 1e-6 moves the result
# by 2e-2 on average and single pixels by up to 0.2; an L-BFGS pair accepted in one run and
# skipped in the other (its s.y on the threshold) is enough. Measured batched vs alone: mean 5e-8
# for two of the three jobs below, 1.4e-3 (L-BFGS) and 3.4e-3 (Adam, where clamping to [0, 1]
# also flips) for the third. So the end result is compared on average: the mean pixel difference
# stays below two 8-bit levels (far below the 2e-2 of a 1e-6 nudge), and J within 1 %.
GRADIENT_TOLERANCE = 1e-5
TOLERANCE = 2.0 / 255


def jobs(optimizer):
    content = gradient_image(40, 32)
    return [
        (content, noise_image(32, 32, seed=s), StyleParams(size=64, steps=4, seed=s, optimizer=optimizer, strength=k, pyramid_levels=2))
        # each strength over COARSE_LEVEL_STRENGTH: the style weights these tolerances were
        # measured with (two levels at 64 px scale the balance by it, bot/engine/params.py)
        for s, k in ((1, 1.0 / COARSE_LEVEL_STRENGTH), (2, 3.0 / COARSE_LEVEL_STRENGTH), (3, 0.5 / COARSE_LEVEL_STRENGTH))
    ]  # fmt: skip


def alone(model, content, style, params, **kw):
    painting = Painting(
        model, content, [style], params, policy_for(torch.device("cpu"), "fp32"), **kw
    )
    while not painting.done:
        painting.step_alone()
    return painting


def together(paintings):
    """The runner's loop: each round, one step of every group of paintings of one shape."""
    failed = []
    while active := [p for p in paintings if not p.done and p not in {f for f, _ in failed}]:
        groups: dict = {}
        for p in active:
            groups.setdefault(p.shape_key, []).append(p)
        for group in groups.values():
            failed += step_together(group)
    return failed


def image_array(painting):
    return np.asarray(painting.result().image, dtype=np.float64) / 255


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_job_batched_with_others_matches_the_job_alone(random_vgg, optimizer):
    policy = policy_for(torch.device("cpu"), "fp32")
    batched = [Painting(random_vgg, c, [s], p, policy) for c, s, p in jobs(optimizer)]
    assert len({b.shape_key for b in batched}) == 1
    assert together(batched) == []
    for painting, (content, style, params) in zip(batched, jobs(optimizer), strict=True):
        single = alone(random_vgg, content, style, params)
        difference = (painting.x.detach() - single.x.detach()).abs()
        print(
            f"{optimizer}: pixel difference batched vs alone: mean {float(difference.mean()):.1e}, "
            f"largest {float(difference.max()):.1e}"
        )
        assert float(difference.mean()) < TOLERANCE
        assert np.abs(image_array(painting) - image_array(single)).mean() < TOLERANCE
        batched_j, single_j = painting.result().losses["total"], single.result().losses["total"]
        assert abs(batched_j - single_j) <= 0.01 * abs(single_j)
        assert painting.result().steps == single.result().steps == 8


def test_the_gradient_in_a_batch_is_the_gradient_alone(random_vgg):
    policy = policy_for(torch.device("cpu"), "fp32")
    paintings = [Painting(random_vgg, c, [s], p, policy) for c, s, p in jobs("lbfgs")]
    batch = torch.cat([p.x for p in paintings]).detach().requires_grad_(True)
    feats = random_vgg(batch, paintings[0].objective.names)
    total = sum(
        p.objective.loss({n: f[i : i + 1] for n, f in feats.items()}, batch[i : i + 1])[0]
        for i, p in enumerate(paintings)
    )
    (grads,) = torch.autograd.grad(total, batch)
    for i, painting in enumerate(paintings):
        x = painting.x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(painting.objective(x)[0], x)
        relative = float((grad - grads[i : i + 1]).abs().max() / grad.abs().max())
        assert relative < GRADIENT_TOLERANCE


def test_mixed_shapes_step_in_groups_of_their_own(random_vgg):
    policy = policy_for(torch.device("cpu"), "fp32")
    params = StyleParams(size=32, steps=3, seed=1)
    wide = Painting(random_vgg, gradient_image(64, 32), [noise_image(32, 32)], params, policy)
    tall = Painting(random_vgg, gradient_image(32, 64), [noise_image(32, 32)], params, policy)
    assert wide.shape_key != tall.shape_key
    assert together([wide, tall]) == []
    assert wide.result().image.size == (32, 16) and tall.result().image.size == (16, 32)


def test_a_cancelled_or_failing_job_leaves_the_others_untouched(random_vgg):
    policy = policy_for(torch.device("cpu"), "fp32")
    (c1, s1, p1), (c2, s2, p2), (c3, s3, p3) = jobs("lbfgs")
    steps = {"n": 0}

    def cancel_after_two():
        steps["n"] += 1
        return steps["n"] >= 2

    cancelled = Painting(random_vgg, c1, [s1], p1, policy, should_cancel=cancel_after_two)
    overflowing = Painting(
        random_vgg, c2, [s2], p2.replace(content_weight=1e38, style_weight=1e38), policy
    )
    healthy = Painting(random_vgg, c3, [s3], p3, policy)
    failed = dict((id(p), e) for p, e in together([cancelled, overflowing, healthy]))
    assert isinstance(failed[id(cancelled)], Cancelled)
    assert isinstance(failed[id(overflowing)], NonFiniteLoss)
    assert id(healthy) not in failed and healthy.done
    single = alone(random_vgg, c3, s3, p3)
    assert float((healthy.x - single.x).abs().mean()) < TOLERANCE


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_batch_under_the_cuda_policy_forced_on_the_cpu(random_vgg, precision):
    """channels_last weights and bf16 autocast, as a GPU batch runs: the batch is made of
    contiguous images, its gradient is split per job, and each job's L-BFGS flattens its own."""
    import dataclasses

    from tests.engine.test_devices import on_cpu

    policy = on_cpu(dataclasses.replace(policy_for(torch.device("cuda"), precision)))
    try:
        # at 48 px, not 64: the CPU may emulate bf16 (an AVX2 EPYC: 51 s at 64 px beside others)
        paintings = [
            Painting(random_vgg, c, [s], p.replace(size=48), policy) for c, s, p in jobs("lbfgs")
        ]
        assert together(paintings) == []
    finally:
        random_vgg.to(memory_format=torch.contiguous_format)
    for painting in paintings:
        result = painting.result()
        assert result.precision == policy.precision and result.steps == 8
        assert all(np.isfinite(v) for v in result.losses.values())
