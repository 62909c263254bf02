"""The `stylebot` command line: one module per command, one error type with its exit code."""

from __future__ import annotations

import argparse


class CliError(Exception):
    """A failure the person at the terminal can act on: printed as one line, then exit `code`.

    Exit codes: 1 a run failed (bad image, missing weights, a failed job), 2 bad usage or
    parameters, 3 the settings or the environment are not right.
    """

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """Bad input from the command line: exit code 2."""

    def __init__(self, message: str):
        super().__init__(message, 2)


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help, once: not when the help already says its default,
    and not for options without one. Tuples read as comma-separated lists."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def parse_sizes(text: str) -> list[int]:
    """A --sizes value: comma-separated whole numbers (UsageError otherwise)."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--sizes takes comma-separated whole numbers, not {text!r}") from None
