"""The `stylebot` command line: one module per command, one error type with its exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class CliError(Exception):
    """A failure the person at the terminal can act on: printed as one line, then exit `code`.

    Exit codes, the same for every command (docs/stylize.md, "Exit codes"): 1 the work ran and
    failed (a job, a benchmark run, a health check); 2 the input was refused (an option, a
    setting, a file or a picture, a run that diverged); 3 the machine lacks something (the
    weights, an extra, the device, the workers); `stylebot run` adds 4, 5 and 6.
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


class Parser(argparse.ArgumentParser):
    """argparse, as a person at a terminal wants its errors: one short usage line (not the whole
    option list) and the error; choices as plain words; an unknown option named by the command
    it was given to, with that command's usage; hidden commands never offered."""

    def error(self, message: str):  # type: ignore[override]
        positionals = " ".join(
            action.metavar if isinstance(action.metavar, str) else action.dest
            for action in self._get_positional_actions()
            if action.help != argparse.SUPPRESS
            and not isinstance(action, argparse._SubParsersAction)
        )
        usage = f"usage: {self.prog} [options]{' ' + positionals if positionals else ''}"
        if any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            usage = f"usage: {self.prog} COMMAND [options]"
        self.exit(
            2,
            f"{usage}\n{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n",
        )

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subcommand:  # said here, with this command's usage, not the root's
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    _subcommand = False

    def _check_value(self, action: argparse.Action, value: object) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        if isinstance(action, argparse._SubParsersAction):  # listed commands only
            shown = [choice.dest for choice in action._choices_actions]
        else:
            shown = [str(choice) for choice in choices]
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!s} (choose from {', '.join(shown)})"
        )


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """--log-level, in any case (debug, DEBUG)."""
    parser.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="overrides STYLEBOT_LOG_LEVEL (default INFO)",
    )


def parse_sizes(text: str) -> list[int]:
    """A --sizes value: comma-separated whole numbers (UsageError otherwise)."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--sizes takes comma-separated whole numbers, not {text!r}") from None


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    about: str,
    handler: Callable[[argparse.Namespace], int],
    *,
    listed: bool = True,
    **defaults: object,
) -> argparse.ArgumentParser:
    """Declare one command: `about` is its one-line help, a blank line, then its description (the
    help alone when it is not `listed` in `stylebot --help`); `handler` runs it. Every command
    shows its options' defaults the same way (HelpFormatter)."""
    summary, _, details = about.strip().partition("\n\n")
    if listed:
        p = subparsers.add_parser(
            name,
            help=" ".join(summary.split()),
            description=" ".join(details.split()),
            formatter_class=HelpFormatter,
        )
    else:  # without help= a command is left out of `stylebot --help`
        p = subparsers.add_parser(
            name, description=" ".join(summary.split()), formatter_class=HelpFormatter
        )
    p.set_defaults(handler=handler, **defaults)
    if isinstance(p, Parser):
        p._subcommand = True
    return p
