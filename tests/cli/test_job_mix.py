"""The mixes of members' pictures that bench-executor sends (bot/cli/job_mix.py)."""

import pytest

from bot.cli import UsageError
from bot.cli.job_mix import UPLOAD_SCALE, describe, draw


def test_a_mix_is_the_same_for_a_seed_and_follows_its_weights():
    jobs = draw("members", 400, seed=3)
    assert jobs == draw("members", 400, seed=3) and jobs != draw("members", 400, seed=4)
    phones = sum(1 for j in jobs if (j.width, j.height) in ((768, 576), (576, 768)))
    assert 0.35 < phones / len(jobs) < 0.65  # 50 % phone photos at 512 px (4:3 and 3:4)
    assert 0.75 < sum(1 for j in jobs if j.size == 512) / len(jobs) < 0.95
    for job in jobs:
        assert max(job.width, job.height) == round(UPLOAD_SCALE * job.size)


def test_a_small_run_scales_the_sizes_and_an_unknown_mix_is_refused():
    assert {j.size for j in draw("members", 200, default_size=128)} == {128, 64, 256}
    assert "128 px 85%" in describe("members", 128)
    with pytest.raises(UsageError, match="--mix takes one of"):
        draw("nobody", 3)
