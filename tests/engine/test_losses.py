import pytest
import torch

from bot.engine.losses import content_cost, gram, gram_norm_cost, layer_style_cost, total_variation
from bot.engine.objective import Objective
from bot.engine.params import StyleParams


def activations(*channels):
    """(1, n_C, 1, n_W) from lists of values per channel."""
    return torch.tensor(channels, dtype=torch.float64).unsqueeze(0).unsqueeze(2)


def test_gram_is_a_a_transpose():
    a = activations([1, 2], [0, 1])
    assert gram(a).tolist() == [[5, 2], [2, 1]]


def test_content_cost_by_hand():
    # sum of squares 1 + 4 = 5; 4 n_H n_W n_C = 4 * 1 * 2 * 1 = 8
    assert content_cost(activations([0, 0]), activations([1, 2])).item() == pytest.approx(5 / 8)


def test_style_cost_by_hand():
    a = activations([1, 2], [0, 1])  # G = [[5, 2], [2, 1]]; 4 n_C^2 (n_H n_W)^2 = 4 * 4 * 4 = 64
    assert layer_style_cost(torch.zeros(2, 2, dtype=torch.float64), a).item() == pytest.approx(
        (25 + 4 + 4 + 1) / 64
    )
    # D = I - G = [[-4, -2], [-2, 0]]: 16 + 4 + 4 + 0 = 24
    assert layer_style_cost(torch.eye(2, dtype=torch.float64), a).item() == pytest.approx(24 / 64)
    assert gram_norm_cost(gram(a), 1, 2).item() == pytest.approx(34 / 64)


def test_style_cost_of_equal_grams_is_zero():
    a = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    assert layer_style_cost(gram(a), a).item() == pytest.approx(0, abs=1e-12)


def test_style_cost_gradient_matches_finite_differences():
    a = torch.randn(1, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    target = gram(torch.randn(1, 3, 2, 3, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(layer_style_cost, (target, a))


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    # vertical diffs (1, 0) -> mean 0.5; horizontal diffs (1, 0) -> mean 0.5
    assert total_variation(image).item() == pytest.approx(1.0)


@pytest.mark.parametrize("raw", [False, True])
def test_gradient_of_j_by_gradcheck(random_vgg, raw):
    model = random_vgg.double()
    try:
        weights = dict(content_weight=2.0, style_weight=3.0) if raw else dict(strength=0.5)
        # shallow layers on a 6x6 image: every term (content, style across a pool, TV, the scales)
        # is in the gradient, at a fraction of the cost of deeper layers
        params = StyleParams(
            size=16,
            style_layers=("relu1_1", "relu2_1"),
            content_layers=("relu1_2",),
            tv_weight=0.1,
            **weights,
        )
        g = torch.Generator().manual_seed(0)
        content = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
        style = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
        objective = Objective(model, params, content, [style], (1.0,), None)
        x = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda x: objective(x)[0], (x,), eps=1e-6, atol=1e-5, rtol=1e-3
        )
    finally:
        random_vgg.float()


def test_raw_mode_is_the_seed_formula(random_vgg):
    params = StyleParams(
        size=16, content_weight=2.0, style_weight=5.0, style_layer_weights=(0.1, 0.2, 0.3, 0.2, 0.2)
    )
    g = torch.Generator().manual_seed(1)
    content, style, x = (torch.rand(1, 3, 16, 16, generator=g) for _ in range(3))
    objective = Objective(random_vgg, params, content, [style], (1.0,), None)
    total, terms = objective(x)
    names = (*params.style_layers, *params.content_layers)
    fc, fs, fx = (random_vgg(t, names) for t in (content, style, x))
    j_content = content_cost(fc["relu4_2"], fx["relu4_2"])
    j_style = sum(
        lam * layer_style_cost(gram(fs[n]), fx[n])
        for lam, n in zip(params.style_layer_weights, params.style_layers, strict=True)
    )
    assert total.item() == pytest.approx((2.0 * j_content + 5.0 * j_style).item(), rel=1e-4)
    assert terms["content"].item() == pytest.approx(2.0 * j_content.item(), rel=1e-4)
