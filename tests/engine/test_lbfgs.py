"""The batched L-BFGS takes the steps torch.optim.LBFGS takes."""

import pytest
import torch

from bot.engine.lbfgs import LBFGS


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def torch_iterates(f, x0, steps, history, lr):
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=lr,
        max_iter=steps,
        max_eval=steps + 1,
        tolerance_grad=-1,
        tolerance_change=-1,
        history_size=history,
    )
    seen = []

    def closure():
        optimizer.zero_grad()
        loss = f(x)
        loss.backward()
        seen.append(x.detach().clone())
        return loss

    optimizer.step(closure)
    return seen, x.detach()


def our_iterates(f, x0, steps, history, lr):
    x = x0.clone()
    optimizer = LBFGS(x, lr=lr, history=history)
    seen = []
    for _ in range(steps):
        x.requires_grad_(True)
        loss = f(x)
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach()
        seen.append(x.clone())
        optimizer.step(x, grad)
    return seen, x


@pytest.mark.parametrize("history, steps", [(100, 25), (3, 30), (1, 12)])
def test_same_iterates_as_torch(history, steps):
    torch.manual_seed(0)
    x0 = torch.rand(12, dtype=torch.float64) * 0.5  # float64: the same algebra, not rounding
    theirs, their_end = torch_iterates(rosenbrock, x0, steps, history, lr=0.5)
    ours, our_end = our_iterates(rosenbrock, x0, steps, history, lr=0.5)
    assert len(ours) == len(theirs) == steps
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10), (a - b).abs().max()
    assert torch.allclose(our_end, their_end, rtol=1e-9, atol=1e-10)


def test_pairs_without_positive_curvature_are_skipped():
    # a linear function: y = 0, so no pair is ever stored and every step is plain gradient descent
    c = torch.tensor([1.0, -2.0, 0.5])

    def linear(x):
        return (c * x).sum()

    theirs, _ = torch_iterates(linear, torch.zeros(3), 5, 4, lr=0.1)
    ours, _ = our_iterates(linear, torch.zeros(3), 5, 4, lr=0.1)
    for a, b in zip(ours, theirs, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_works_on_an_image_shaped_tensor_in_any_memory_format():
    x = torch.rand(1, 3, 8, 6).contiguous(memory_format=torch.channels_last)
    optimizer = LBFGS(x, lr=1.0, history=5)
    target = torch.rand(1, 3, 8, 6)
    for _ in range(10):
        x.requires_grad_(True)
        loss = ((x - target) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach()
        optimizer.step(x, grad)
    assert ((x - target) ** 2).sum() < 1e-6
