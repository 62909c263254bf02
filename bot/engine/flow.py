"""Motion between a clip's content frames: optical flow (OpenCV's DIS), where it can be trusted,
pictures moved along it, and the flicker of a painted clip measured with it.

After Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos" (2016): frame t is
compared with frame t-1 moved along the content's flow, only where the flow is reliable: the
forward and backward flows agree, and the pixel is not on a motion boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class Motion:
    """For each pair p, where each pixel of frame `after[p]` was in frame `before[p]` (`flow`,
    pixels, (P, H, W, 2)) and whether that is reliable (`weight`, 1 or 0, (P, 1, H, W)). Pairs are
    the consecutive frames, and the last frame to the first when the clip loops."""

    flow: torch.Tensor
    weight: torch.Tensor
    before: list[int]
    after: list[int]

    @property
    def consecutive(self) -> list[int]:
        """The pairs of neighbouring frames (the loop's last-to-first pair left out)."""
        return [
            p for p, (b, a) in enumerate(zip(self.before, self.after, strict=True)) if a == b + 1
        ]

    def reliable_share(self) -> float:
        return float(self.weight.mean()) if len(self.before) else 1.0


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where each pixel of picture `a` (H, W, 3 uint8) is in picture `b`: (H, W, 2) pixels."""
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    out = np.zeros((*grey_a.shape, 2), np.float32)  # written, not read (no initial flow)
    return dis.calc(grey_a, grey_b, out)


def _sample(field: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`field` read at each pixel's position moved by `flow` (bilinear, edges repeated)."""
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        field, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip


def reliable(back: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the backward flow (frame t -> t-1) can be trusted, (H, W) in {0, 1}: it lands inside
    frame t-1, the forward flow brings it back (Ruder et al.'s test), and it is no motion
    boundary."""
    h, w = back.shape[:2]
    there = _sample(forward, back)
    round_trip = ((back + there) ** 2).sum(-1)
    agree = round_trip <= 0.01 * ((back**2).sum(-1) + (there**2).sum(-1)) + 0.5
    du_y, du_x = np.gradient(back[..., 0])
    dv_y, dv_x = np.gradient(back[..., 1])
    boundary = du_x**2 + du_y**2 + dv_x**2 + dv_y**2 > 0.01 * (back**2).sum(-1) + 0.002
    grid_x, grid_y = np.meshgrid(np.arange(w), np.arange(h))
    x, y = grid_x + back[..., 0], grid_y + back[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return (agree & ~boundary & inside).astype(np.float32)


def clip_motion(frames: list[Image.Image], loop: bool) -> Motion:
    """The motion between the content frames (all one size) of a clip, and back to the first when
    it loops."""
    arrays = [np.asarray(f.convert("RGB")) for f in frames]
    pairs = [(t - 1, t) for t in range(1, len(arrays))]
    if loop and len(arrays) > 2:
        pairs.append((len(arrays) - 1, 0))
    flows, weights = [], []
    for before, after in pairs:
        back = optical_flow(arrays[after], arrays[before])
        forward = optical_flow(arrays[before], arrays[after])
        flows.append(back)
        weights.append(reliable(back, forward))
    h, w = arrays[0].shape[:2]
    return Motion(
        flow=torch.from_numpy(np.stack(flows)) if flows else torch.zeros(0, h, w, 2),
        weight=torch.from_numpy(np.stack(weights))[:, None] if weights else torch.zeros(0, 1, h, w),
        before=[b for b, _ in pairs],
        after=[a for _, a in pairs],
    )


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Pictures `x` (P, C, H, W) moved along `flow` (P, H, W, 2): out[p](q) = x[p](q + flow[p](q)),
    bilinear, edges repeated. Differentiable in `x`."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float32),
        torch.arange(w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    flow = flow.to(device=x.device, dtype=torch.float32)
    gx = (xs + flow[..., 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[..., 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True
    ).to(x.dtype)


def temporal_differences(
    x: torch.Tensor, motion: Motion, pairs: list[int] | None = None
) -> torch.Tensor:
    """Per pair: the reliable pixels' mean squared difference between frame `after` and frame
    `before` moved along the flow (x: (N, 3, H, W) in [0, 1]); a (P,) tensor, differentiable."""
    pairs = list(range(len(motion.before))) if pairs is None else pairs
    if not pairs:
        return x.new_zeros(0)
    before = x[[motion.before[p] for p in pairs]]
    after = x[[motion.after[p] for p in pairs]]
    moved = warp(before, motion.flow[pairs])
    weight = motion.weight[pairs].to(x.device, x.dtype)
    squared = weight * (after - moved) ** 2
    return squared.mean(dim=(1, 2, 3)) / weight.mean(dim=(1, 2, 3)).clamp_min(1e-6)


@torch.no_grad()
def warping_error(x: torch.Tensor, motion: Motion) -> float:
    """Flicker: the mean absolute difference, over the reliable pixels of every pair of
    neighbouring frames, between a frame and the one before it moved along the content's flow
    (pixel values in [0, 1]; 0 = perfectly steady). Painting each frame alone is the baseline."""
    pairs = motion.consecutive
    if not pairs:
        return 0.0
    before = x[[motion.before[p] for p in pairs]].float()
    after = x[[motion.after[p] for p in pairs]].float()
    weight = motion.weight[pairs].to(x.device)
    moved = warp(before, motion.flow[pairs])
    total = (weight * (after - moved).abs()).sum() / 3
    return float(total / weight.sum().clamp_min(1))
