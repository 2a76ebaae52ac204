"""Argument parsing shared by the subcommands: one argparse parser per command.

Each command gets its own `Parser` (absl's `argparse_flags`, so absl's own
flags such as `--flagfile` and `--verbosity` keep working), parsed with
`parse_intermixed_args`: flags may come before, between or after the
positional arguments. A flag another command defines is a usage error here.
Flag values are checked while parsing (`type=` functions raising
`argparse.ArgumentTypeError`), so a bad value is a usage error naming the flag.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Sequence

from absl import app, flags
from absl.flags import argparse_flags

from est_ckpt.fileio import remote
from est_ckpt.version import __version__

# absl's spellings of a boolean flag's value: `--json=true`, `--json=0`, ...
_TRUE = ("true", "t", "1")
_FALSE = ("false", "f", "0")
JSON_HELP = "Print one JSON object instead of text."


class UsageError(app.UsageError):
    """A command line that does not say what to do: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exitcode=2)


class Parser(argparse_flags.ArgumentParser):
    """The parser of one `est-ckpt` command: usage errors raise `UsageError`, help is one short page."""

    def __init__(self, name: str, usage: str, summary: str) -> None:
        # Filled by `add_argument`, which `__init__` already calls.
        self.long_flags: set[str] = set()
        self.flag_actions: list[argparse.Action] = []
        # absl matches whole flag names only, so abbreviations (`--tar` for `--target`) are off.
        super().__init__(
            prog=f"est-ckpt {name}", usage=f"est-ckpt {usage}", description=summary, allow_abbrev=False
        )
        self.add_argument("-?", action="help", help=argparse.SUPPRESS)
        self.add_argument(
            "--version", action="version", version=f"est-ckpt {__version__}", help=argparse.SUPPRESS
        )
        self.add_argument("positionals", nargs="*", help=argparse.SUPPRESS)
        self.add_argument(
            "--remote_timeout",
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help=f"Seconds a remote store (s3://, gs://) may take to answer a request before est-ckpt gives "
            f"up naming its endpoint (default: ${remote.REMOTE_TIMEOUT_ENV}, else "
            f"{remote.DEFAULT_REMOTE_TIMEOUT:g}).",
        )

    def add_argument(self, *names, **kwargs) -> argparse.Action:
        self.long_flags.update(n[2:] for n in names if n.startswith("--"))
        action = super().add_argument(*names, **kwargs)
        self.flag_actions.append(action)
        return action

    def error(self, message: str):
        raise UsageError(message)

    def format_help(self) -> str:
        lines = [f"usage: {self.usage}", "", self.description]
        # The command's own flags: absl's inherited ones and the help flags have no `dest`.
        own = [
            a
            for a in self.flag_actions
            if a.option_strings and a.dest not in (argparse.SUPPRESS, "help") and a.help != argparse.SUPPRESS
        ]
        if own:
            lines += ["", "flags:"]
        for action in own:
            default = "" if action.default in (None, False, [], "") else f" (default: {action.default})"
            lines.append(f"  {action.option_strings[0]}: {action.help}{default}")
        return "\n".join(lines) + "\n"

    def add_bool(self, name: str, help: str) -> None:
        """Adds boolean flag `--name`, also spelt `--noname` and `--name=true|false` as absl does."""
        self.add_argument(f"--{name}", f"--no{name}", action=_Bool, default=False, help=help)

    def parse(self, args: Sequence[str]) -> argparse.Namespace:
        """Parses `args` (flags anywhere); raises `UsageError` on bad ones."""
        args = list(args)
        end = args.index("--") if "--" in args else len(args)  # After `--` everything is positional.
        try:
            parsed, unknown = self.parse_known_intermixed_args(
                [self._absl_spelling(a) for a in args[:end]] + args[end:]
            )
        except flags.Error as e:  # an inherited absl flag's own check (`--verbosity=x`)
            self.error(str(e))
        if unknown:
            self.error(f"{' '.join(unknown)}: not a flag of '{self.prog}'")
        return parsed

    def _absl_spelling(self, arg: str) -> str:
        """Rewrites what absl accepts and argparse does not: `-name` for `--name`, `--bool=true|false`."""
        if arg[:1] == "-" and arg[1:2] != "-" and arg[1:].split("=", 1)[0] in self.long_flags:
            arg = "-" + arg
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            if name in self.long_flags and f"no{name}" in self.long_flags:  # a boolean
                if value.lower() in _TRUE:
                    return f"--{name}"
                if value.lower() in _FALSE:
                    return f"--no{name}"
                self.error(f"--{name} takes true or false, or no value (got {value!r}); --no{name} is false.")
        return arg


class _Bool(argparse.Action):
    def __init__(self, option_strings, dest, default=False, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, option_string == self.option_strings[0])


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """A `type=` for a flag taking one of `values`."""

    def parse(value: str) -> str:
        if value not in values:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(values)} (got {value!r})")
        return value

    return parse


def _number(value: str, ok: Callable[[float], bool], expected: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not ok(number):
        raise argparse.ArgumentTypeError(f"must be {expected} (got {value!r})")
    return number


def non_negative_float(value: str) -> float:
    """A `type=` for a number >= 0 (`inf` included, `nan` not)."""
    return _number(value, lambda n: n >= 0, "a number >= 0")


def positive_float(value: str) -> float:
    """A `type=` for a finite number > 0."""
    return _number(value, lambda n: 0 < n < math.inf, "a number of seconds > 0")


def non_empty(what: str) -> Callable[[str], str]:
    """A `type=` for a string that must not be empty; `what` says what it names."""

    def parse(value: str) -> str:
        if not value:
            raise argparse.ArgumentTypeError(f"must name {what} (got an empty value)")
        return value

    return parse


def regex(value: str) -> str:
    """A `type=` for a regular expression: one that does not compile is a usage error."""
    _compile(value, value)
    return value


def pair(form: str, *, split_last: bool, left_regex: bool = False) -> Callable[[str], tuple[str, str]]:
    """A `type=` for `LEFT=RIGHT`, split at the first `=` (or the last, with `split_last`).

    Args:
      form: how the value is written, for the error message (`"SRC=DST"`).
      split_last: split at the last `=` instead of the first.
      left_regex: LEFT is a regular expression and must compile.
    """

    def parse(value: str) -> tuple[str, str]:
        if "=" not in value:
            raise argparse.ArgumentTypeError(f"{value!r} must be written {form}")
        left, right = value.rsplit("=", 1) if split_last else value.split("=", 1)
        if left_regex:
            _compile(left, value)
        return left, right

    return parse


def _compile(pattern: str, value: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise argparse.ArgumentTypeError(
            f"{value!r}: {pattern!r} is not a valid regular expression ({e})"
        ) from None
