"""`est-ckpt`: the command-line tool (an absl app with subcommands).

The CLI is thin: each subcommand lives in `est_ckpt/commands/<name>.py`, defines
its flags at module level, and calls a plain library function. Errors of the
library become one line on stderr and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from absl import app, flags

from est_ckpt.errors import EstCkptError

COMMANDS = {
    "inspect": "est_ckpt.commands.inspect",
    "convert": "est_ckpt.commands.convert",
    "diff": "est_ckpt.commands.diff",
    "map": "est_ckpt.commands.map",
    "verify": "est_ckpt.commands.verify",
    "demo": "est_ckpt.commands.demo",
}

FLAGS = flags.FLAGS
JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")

_USAGE = "usage: est-ckpt {" + ",".join(COMMANDS) + "} ARGS [FLAGS]  (est-ckpt COMMAND --help)"
_SUMMARIES = {
    "inspect": "what a checkpoint holds: format, keys, dtypes, shapes, TF1 names",
    "convert": "TF1 <-> TF2 by rewriting only the index; atomic and verified",
    "diff": "compare two checkpoints by TF1 name, across formats",
    "map": "warm-start dry run: which checkpoint key feeds which variable",
    "verify": "check every checksum, offset and size, without TensorFlow",
    "demo": "the whole migration story in one run",
}
_HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")


def _load(name: str):
    try:
        return importlib.import_module(COMMANDS[name])
    except ModuleNotFoundError as e:
        if e.name == COMMANDS[name]:
            raise app.UsageError(
                f"'{name}' is not available in this version of est-ckpt.", exitcode=2
            ) from None
        raise


def _command_name(argv: Sequence[str]) -> str | None:
    for arg in argv[1:]:
        if not arg.startswith("-"):
            return arg
    return None


def _help(name: str | None) -> None:
    """Prints the overview, or one command's usage and flags, and exits 0."""
    if name not in COMMANDS:
        lines = [_USAGE, "", "commands:"]
        lines += [f"  {cmd:<8} {summary}" for cmd, summary in _SUMMARIES.items()]
        print("\n".join(lines))
        sys.exit(0)
    module = _load(name)
    print(f"usage: est-ckpt {module.USAGE}\n\n{_SUMMARIES[name]}")
    accepted = [f for f in getattr(module, "ACCEPTS", ()) if f in FLAGS]
    if accepted:
        print("\nflags:")
        for flag_name in accepted:
            flag = FLAGS[flag_name]
            default = "" if flag.default in (None, False, [], "") else f" (default: {flag.default_as_str})"
            print(f"  --{flag_name}: {flag.help}{default}")
    sys.exit(0)


def _parse(argv: list[str]) -> list[str]:
    # Command modules define their flags on import, so import the chosen one first.
    name = _command_name(argv)
    if any(arg in _HELP_FLAGS for arg in argv[1:]):
        try:
            _help(name)
        except app.UsageError as e:
            _fail(str(e), 2)
    if name in COMMANDS:
        try:
            _load(name)
        except app.UsageError as e:
            _fail(str(e), 2)
    try:
        return FLAGS(argv)
    except flags.Error as e:
        _fail(f"{e}", 2)
    raise AssertionError("unreachable")


def _fail(message: str, code: int):
    print(f"est-ckpt: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: Sequence[str]) -> int:
    name = _command_name(argv)
    if name is None:
        _fail(_USAGE, 2)
    if name not in COMMANDS:
        _fail(f"unknown command '{name}'. {_USAGE}", 2)
    args = list(argv[1:])
    args.remove(name)
    try:
        module = _load(name)
        if JSON.present and "json" not in getattr(module, "ACCEPTS", ()):
            raise app.UsageError(f"--json is not a flag of 'est-ckpt {name}'.", exitcode=2)
        return int(module.run(args) or 0)
    except app.UsageError as e:
        _fail(f"{e} (usage: est-ckpt {getattr(module, 'USAGE', name)})", 2)
    except EstCkptError as e:
        _fail(str(e), 1)
    except (OSError, MemoryError) as e:
        _fail(str(e) or type(e).__name__, 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    return 1


def run() -> None:
    """Console-script entry point."""
    app.run(main, flags_parser=_parse)
