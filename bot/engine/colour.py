"""PIL images <-> tensors, and the colour transforms of colour-preserving transfer (torch)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image to a (1, 3, H, W) float32 tensor in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] to an RGB image (clamped, rounded)."""
    t = tensor.detach().float().reshape(3, *tensor.shape[-2:]).clamp(0, 1)
    array = (t.permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, "RGB")


_RGB_TO_YCBCR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] to YCbCr (JPEG's full range, Cb and Cr centred on 0.5)."""
    m = _RGB_TO_YCBCR.to(rgb)
    out = torch.einsum("ij,njhw->nihw", m, rgb)
    return out + torch.tensor([0.0, 0.5, 0.5], device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_RGB_TO_YCBCR.double()).to(ycbcr)
    centred = ycbcr - torch.tensor([0.0, 0.5, 0.5], device=ycbcr.device, dtype=ycbcr.dtype).view(
        1, 3, 1, 1
    )
    return torch.einsum("ij,njhw->nihw", m, centred)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated three times: a grey RGB image."""
    return rgb_to_ycbcr(rgb)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Grey `source` with its luminance mean and spread moved to `reference`'s (Gatys et al. 2016)."""
    y_s, y_r = rgb_to_ycbcr(source)[:, :1], rgb_to_ycbcr(reference)[:, :1]
    y = (y_s - y_s.mean()) * (y_r.std() / y_s.std().clamp_min(1e-6)) + y_r.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(luma_image: torch.Tensor, colour_image: torch.Tensor) -> torch.Tensor:
    """Y from `luma_image`, Cb and Cr from `colour_image` (same size)."""
    y = rgb_to_ycbcr(luma_image)[:, :1]
    cbcr = rgb_to_ycbcr(colour_image)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)


def match_colors(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`source` with its colour mean and covariance moved to `reference`'s.

    The linear map x -> C_r^(1/2) C_s^(-1/2) (x - mu_s) + mu_r (the 'image analogies' variant of
    colour histogram matching in Gatys et al., "Preserving Color in Neural Artistic Style
    Transfer", 2016).
    """

    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(1, keepdim=True)
        centred = pixels - mean
        cov = centred @ centred.t() / pixels.shape[1] + 1e-5 * torch.eye(3, dtype=torch.float64)
        return mean, cov

    def sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(cov)
        return vectors @ torch.diag(values.clamp_min(1e-8) ** power) @ vectors.t()

    mu_s, cov_s = stats(source.cpu())
    mu_r, cov_r = stats(reference.cpu())
    transform = sqrtm(cov_r, 0.5) @ sqrtm(cov_s, -0.5)
    pixels = source.reshape(3, -1).cpu().double()
    matched = transform @ (pixels - mu_s) + mu_r
    return matched.reshape(source.shape).to(source).clamp(0, 1)
