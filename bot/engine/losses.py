"""The costs of the seed document, on activations of shape (1, n_C, n_H, n_W)."""

from __future__ import annotations

import torch


def _as_matrix(activations: torch.Tensor) -> torch.Tensor:
    _, n_c, n_h, n_w = activations.shape
    a = activations.reshape(n_c, n_h * n_w)
    return a.float() if a.dtype in (torch.float16, torch.bfloat16) else a


def gram(activations: torch.Tensor) -> torch.Tensor:
    """G = A A^T with A the activations reshaped to (n_C, n_H * n_W); float32 for half inputs."""
    a = _as_matrix(activations)
    with torch.autocast(a.device.type, enabled=False):
        return a @ a.t()


class _LayerStyleCost(torch.autograd.Function):
    """The seed's per-layer style cost with its gradient written out.

    dJ/dA = -2 k (D + D^T) A with D = G^(S) - A A^T and k = 1 / (4 n_C^2 (n_H n_W)^2): one
    matrix product in the backward pass where autograd would do two (one per factor of A A^T).
    """

    @staticmethod
    def forward(ctx, target_gram: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
        _, n_c, n_h, n_w = activations.shape
        a = _as_matrix(activations)
        with torch.autocast(a.device.type, enabled=False):
            diff = target_gram.to(a.dtype) - a @ a.t()
        scale = 1.0 / (4.0 * n_c**2 * (n_h * n_w) ** 2)
        ctx.save_for_backward(a, diff)
        ctx.scale, ctx.shape, ctx.dtype = scale, activations.shape, activations.dtype
        return (diff * diff).sum() * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        a, diff = ctx.saved_tensors
        grad_target = grad_activations = None
        if ctx.needs_input_grad[0]:
            grad_target = (2.0 * ctx.scale) * grad_output * diff
        if ctx.needs_input_grad[1]:
            with torch.autocast(a.device.type, enabled=False):
                # the scalar goes on the small (n_C, n_C) factor, not on the large product
                grad = ((diff + diff.t()) * (-2.0 * ctx.scale * grad_output)) @ a
            grad_activations = grad.reshape(ctx.shape).to(ctx.dtype)
        return grad_target, grad_activations


def layer_style_cost(target_gram: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """J_style^[l] = 1 / (4 n_C^2 (n_H n_W)^2) * sum_ij (G^(S)_ij - G^(G)_ij)^2."""
    return _LayerStyleCost.apply(target_gram, activations)


def gram_cost(target_gram: torch.Tensor, generated_gram: torch.Tensor, n_h: int, n_w: int):
    """J_style^[l] from the two Gram matrices (the generated one summed over tiles, say)."""
    n_c = target_gram.shape[0]
    diff = target_gram - generated_gram
    return (diff * diff).sum() / (4.0 * n_c**2 * (n_h * n_w) ** 2)


def gram_surrogate(weight: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_ij W_ij (A A^T)_ij for a symmetric W, computed as sum((W A) * A): its gradient is
    2 W A. With W = -2 k D (D the whole picture's G^(S) - G^(G), held fixed), that is the style
    cost's gradient at these positions, whichever tile they come from."""
    a = _as_matrix(activations)
    with torch.autocast(a.device.type, enabled=False):
        return ((weight @ a) * a).sum()


def gram_norm_cost(target_gram: torch.Tensor, n_h: int, n_w: int) -> torch.Tensor:
    """J_style^[l] of an all-zero generated image: the scale used to normalise the layer."""
    n_c = target_gram.shape[0]
    return (target_gram * target_gram).sum() / (4.0 * n_c**2 * (n_h * n_w) ** 2)


def content_cost(target: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """J_content = 1 / (4 n_H n_W n_C) * sum (a^(C) - a^(G))^2."""
    _, n_c, n_h, n_w = activations.shape
    diff = target - activations
    if diff.dtype in (torch.float16, torch.bfloat16):
        diff = diff.float()
    return (diff * diff).sum() / (4.0 * n_h * n_w * n_c)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (a smoothness prior, not in the seed)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return (dy * dy).mean() + (dx * dx).mean()
