"""A small upload never costs much: what a moving picture costs is read from its header, bounded
before anything is decoded, and every decoder error is the member's clear refusal."""

import subprocess
import sys
import time

import pytest

from bot.engine.params import ImageLimits, StyleParams
from bot.media import clips, encoding
from bot.media.imaging import ImageError, TooManyPixels
from tests import hostile_clips as hostile
from tests.conftest import moving_clip


def test_a_gif_of_many_frames_on_a_huge_screen_is_cut_to_what_the_budget_reads():
    data = hostile.gif_of_tiny_frames(6000, 10_000)  # 230 KB: 10,000 frames of 6000x6000
    assert len(data) < 250_000
    header = clips.probe_clip(data)
    assert header is not None and header.frames == 10_000 and header.canvas == (6000, 6000)
    assert clips.frames_to_paint(data, StyleParams()) == 2  # from the header alone
    started = time.perf_counter()
    clip = clips.decode_clip(data)
    assert time.perf_counter() - started < 20  # a budget, not a timing: it took 300 s and more
    assert len(clip.frames) == 2 and clip.frames[0].size == (384, 384)
    assert clip.changes == (
        "the first 0.04 s of 200.0 s: at 6000x6000 a frame, more would take too long to read",
    )


def test_an_apng_of_many_frames_on_a_huge_canvas_is_cut_the_same_way():
    data = hostile.apng_of_tiny_frames(6000, 2000)
    header = clips.probe_clip(data)
    assert header is not None and header.format == "PNG" and header.frames == 2000
    clip = clips.decode_clip(data)
    assert len(clip.frames) == 2 and "more would take too long to read" in clip.changes[0]


def test_the_budget_is_the_servers_setting():
    data = encoding.encode_clip(moving_clip(frames=20, width=64, height=48), "gif")
    small = ImageLimits(max_clip_pixels=64 * 48 * 10 * 5)  # five frames' worth
    assert len(clips.decode_clip(data, small).frames) == 5
    assert len(clips.decode_clip(data).frames) == 20


def test_a_frame_placed_past_the_pixel_cap_is_refused_from_the_header():
    data = hostile.gif_with_a_frame_placed_at(64, 9999, 9999)  # 64x64 says the header
    assert len(data) < 100
    with pytest.raises(TooManyPixels, match="10000x10000 canvas"):
        clips.probe_clip(data)
    with pytest.raises(TooManyPixels):
        clips.decode_clip(data)
    # past Pillow's own bomb limit (which raised DecompressionBombError, unhandled), the same
    with pytest.raises(TooManyPixels):
        clips.decode_clip(hostile.gif_with_a_frame_placed_at(64, 65000, 65000))


def test_a_frame_placed_a_little_outside_is_cut_to_the_picture_a_browser_shows():
    clip = clips.decode_clip(hostile.gif_with_a_frame_placed_at(64, 100, 30))
    assert [f.size for f in clip.frames] == [(64, 64), (64, 64)]


def test_a_video_of_a_thousand_frames_a_second_keeps_only_the_frames_it_paints():
    """Memory is bounded by clip_frames, not by the frame rate (5.0 GB before for 295 KB)."""
    code = (
        "import resource; from bot.media import clips; from tests import hostile_clips as h\n"
        "data = h.mp4_at(1000, 1500, 384)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "clip = clips.decode_clip(data)\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(len(clip.frames), sum(clip.durations), grown // 1024, *clip.changes, sep='|')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    frames, seconds, grown_mb, *changes = out.split("|")
    assert int(frames) == 48 and int(seconds) == 1500
    assert changes == ["32 frames a second instead of 1000"]
    # 1,500 frames of 384x384 kept would be 660 MB; 48 are 21 MB
    assert int(grown_mb) < 200, f"reading grew the process by {grown_mb} MB"


def test_a_60_fps_video_keeps_its_length_and_its_caption_is_true():
    data = hostile.mp4_at(60, 480)  # 8.0 s
    clip = clips.decode_clip(data)
    assert sum(clip.durations) == 8000 and len(clip.frames) == 48
    assert clip.changes == ("6 frames a second instead of 60",)  # not "the first 8 s of 9.6 s"
    assert clips.frames_to_paint(data, StyleParams()) == 48
    # a video's frames are not held to the GIF's 20 ms floor
    short = clips.decode_clip(data, clip_limits=clips.ClipLimits(max_frames=300, max_seconds=1))
    assert len(short.frames) == 60 and sum(short.durations) == 1000
    assert min(short.durations) < 20


def test_a_video_over_the_budget_is_cut_to_its_first_frames_and_says_so():
    data = hostile.mp4_at(25, 50)  # 64x64, 2 s
    clip = clips.decode_clip(data, ImageLimits(max_clip_pixels=64 * 64 * 10))
    assert len(clip.frames) == 10 and sum(clip.durations) == 400
    assert clip.changes == (
        "the first 0.40 s of 2.0 s: at 64x64 a frame, more would take too long to read",
    )


def test_reading_stops_between_frames_when_told():
    data = encoding.encode_clip(moving_clip(frames=20), "gif")
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(clips.ReadingStopped):
        clips.decode_clip(data, should_stop=stop)
    with pytest.raises(clips.ReadingStopped):
        clips.decode_clip(hostile.mp4_at(25, 20), should_stop=lambda: True)


@pytest.mark.parametrize("share", [0.004, 0.4, 0.7, 0.95])
def test_a_damaged_animation_is_refused_or_decoded_as_far_as_its_header_goes(share):
    """Bytes of noise from `share` of the file on: the header then lists the frames before the
    damage. One frame or none left: refused with a reason (a still is not a moving picture);
    more: exactly those frames decode, at the picture's size."""
    data = encoding.encode_clip(moving_clip(frames=6), "gif")
    damaged = data[: int(len(data) * share)] + bytes(range(256)) * 2
    try:
        header = clips.probe_clip(damaged)
    except ImageError:
        header = None
    frames = len(header.durations) if header is not None else 0
    if frames < 2:
        with pytest.raises(ImageError, match="the content"):
            clips.decode_clip(damaged)
        assert share < 0.7  # the damage began in the first frames
        return
    clip = clips.decode_clip(damaged)
    assert 2 <= len(clip.frames) == frames < 6
    assert {frame.size for frame in clip.frames} == {(64, 48)}
    assert share > 0.4  # the damage came after two frames were whole
