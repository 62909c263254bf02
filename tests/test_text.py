"""Text that must fit Discord's limits by construction."""

from bot.text import MESSAGE_LIMIT, clip, fit_lines


def test_fit_lines_keeps_whole_lines_and_counts_the_rest():
    lines = [f"- line {i:02d} " + "x" * 90 for i in range(40)]
    text = fit_lines("Head:", lines)
    assert len(text) <= MESSAGE_LIMIT and text.startswith("Head:\n- line 00")
    shown = text.count("\n- line ")
    assert text.endswith(f"… and {40 - shown} more") and 0 < shown < 40
    assert fit_lines("Head:", lines[:3]) == "Head:\n" + "\n".join(lines[:3])


def test_clip():
    assert clip("abc", 3) == "abc" and clip("abcd", 3) == "ab…"
