"""The costs of the seed document, on activations of shape (1, n_C, n_H, n_W)."""

from __future__ import annotations

import torch


def gram(activations: torch.Tensor) -> torch.Tensor:
    """G = A A^T with A the activations reshaped to (n_C, n_H * n_W). Computed in float32."""
    _, n_c, n_h, n_w = activations.shape
    a = activations.reshape(n_c, n_h * n_w)
    if a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()
    return a @ a.t()


def layer_style_cost(target_gram: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """J_style^[l] = 1 / (4 n_C^2 (n_H n_W)^2) * sum_ij (G^(S)_ij - G^(G)_ij)^2."""
    _, n_c, n_h, n_w = activations.shape
    diff = target_gram - gram(activations)
    return (diff * diff).sum() / (4.0 * n_c**2 * (n_h * n_w) ** 2)


def gram_norm_cost(target_gram: torch.Tensor, n_h: int, n_w: int) -> torch.Tensor:
    """J_style^[l] of an all-zero generated image: the scale used to normalise the layer."""
    n_c = target_gram.shape[0]
    return (target_gram * target_gram).sum() / (4.0 * n_c**2 * (n_h * n_w) ** 2)


def content_cost(target: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """J_content = 1 / (4 n_H n_W n_C) * sum (a^(C) - a^(G))^2."""
    _, n_c, n_h, n_w = activations.shape
    diff = (target - activations).float()
    return (diff * diff).sum() / (4.0 * n_h * n_w * n_c)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (a smoothness prior, not in the seed)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return (dy * dy).mean() + (dx * dx).mean()
