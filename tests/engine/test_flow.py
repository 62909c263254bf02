"""Motion between content frames: the flow finds a moving square, warping along it rebuilds the
next frame where the flow is reliable, and the warping error measures flicker."""

import numpy as np
import torch

from bot.engine import colour
from bot.engine.flow import clip_motion, optical_flow, warp, warping_error
from tests.conftest import moving_clip


def test_the_flow_finds_where_the_square_went():
    clip = moving_clip(frames=2, width=96, height=64, step=4)
    a, b = (np.asarray(f) for f in clip.frames)
    back = optical_flow(b, a)  # where each pixel of the second frame was in the first
    square = back[26:38, 14:30]  # inside the square in the second frame
    assert np.allclose(square[..., 0].mean(), -4, atol=0.7)
    assert abs(square[..., 1].mean()) < 0.5


def test_the_frame_before_moved_along_the_flow_is_the_frame_after_where_reliable():
    clip = moving_clip(frames=4, width=96, height=64, step=4, loop=False)
    motion = clip_motion(clip.frames, loop=False)
    assert motion.before == [0, 1, 2] and motion.after == [1, 2, 3]
    assert 0.5 < motion.reliable_share() < 1.0  # the square's trailing edge is uncovered
    x = torch.cat([colour.to_tensor(f) for f in clip.frames])
    moved = warp(x[:-1], motion.flow)
    weight = motion.weight
    error = float((weight * (moved - x[1:]).abs()).sum() / (3 * weight.sum()))
    unwarped = float((weight * (x[:-1] - x[1:]).abs()).sum() / (3 * weight.sum()))
    assert error < 0.01 and error < unwarped / 3
    assert warping_error(x, motion) == error or abs(warping_error(x, motion) - error) < 1e-6


def test_a_looping_clip_also_pairs_its_last_frame_with_its_first():
    motion = clip_motion(moving_clip(frames=4).frames, loop=True)
    assert motion.before == [0, 1, 2, 3] and motion.after == [1, 2, 3, 0]
    assert motion.consecutive == [0, 1, 2]  # the warping error leaves the loop's seam out


def test_the_warping_error_sees_flicker():
    clip = moving_clip(frames=4, width=96, height=64, loop=False)
    motion = clip_motion(clip.frames, loop=False)
    x = torch.cat([colour.to_tensor(f) for f in clip.frames])
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    steady = warping_error(x, motion)
    flickering = warping_error((x + 0.2 * (noise - 0.5)).clamp(0, 1), motion)
    assert flickering > steady + 0.03
