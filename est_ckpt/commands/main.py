"""`est-ckpt`: the command-line tool (an absl app with subcommands).

The CLI is thin: each subcommand lives in `est_ckpt/commands/<name>.py`, adds
its flags to its own `parsing.Parser` (`add_flags`) and calls a plain library
function (`run`). Only the command being run is imported. The command is the
first argument that names one; flags may come before or after it. Errors of
the library become one line on stderr and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType
from typing import NamedTuple, Sequence

from absl import app

from est_ckpt.commands import parsing
from est_ckpt.commands.process import EXIT_INTERRUPTED, quiet_native_logs
from est_ckpt.errors import EstCkptError
from est_ckpt.fileio import remote
from est_ckpt.version import __version__

COMMANDS = {
    "inspect": "est_ckpt.commands.inspect",
    "convert": "est_ckpt.commands.convert",
    "diff": "est_ckpt.commands.diff",
    "map": "est_ckpt.commands.map",
    "verify": "est_ckpt.commands.verify",
    "demo": "est_ckpt.commands.demo",
    "export": "est_ckpt.commands.export",
}
SUMMARIES = {
    "inspect": "what a checkpoint holds: format, keys, dtypes, shapes, TF1 names",
    "convert": "TF1 <-> TF2, or onto a template (--like), by rewriting only the index; atomic and verified",
    "diff": "compare two checkpoints by TF1 name, across formats",
    "map": "warm-start dry run: which checkpoint key feeds which variable",
    "verify": "check every checksum, offset and size, without TensorFlow",
    "demo": "the whole migration story in one run",
    "export": "every tensor, by name, into .safetensors or .npz (for PyTorch, JAX)",
}
_USAGE = "usage: est-ckpt {" + ",".join(COMMANDS) + "} ARGS [FLAGS]  (est-ckpt COMMAND --help)"
_HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")
# What a shell reports for a process killed by SIGPIPE (128 + 13): the reader went away.
EXIT_BROKEN_PIPE = 141


class Invocation(NamedTuple):
    """A parsed command line: the command's name, its module and its parsed arguments."""

    name: str
    module: ModuleType
    args: argparse.Namespace


def _fail(message: str, code: int):
    # One line, whatever the message holds (TensorFlow's span several).
    print(f"est-ckpt: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _load(name: str) -> ModuleType:
    try:
        return importlib.import_module(COMMANDS[name])
    except ModuleNotFoundError as e:
        if e.name == COMMANDS[name]:
            _fail(f"'{name}' is not available in this version of est-ckpt.", 2)
        raise


def parser_for(name: str, module: ModuleType) -> parsing.Parser:
    """The parser of command `name`, with the flags its module adds."""
    parser = parsing.Parser(name, module.USAGE, SUMMARIES[name])
    module.add_flags(parser)
    return parser


def _overview(argv: Sequence[str]) -> None:
    """Without a command: the overview for a help flag, the version, or a usage error (exit 2)."""
    if any(arg in _HELP_FLAGS for arg in argv):
        lines = [_USAGE, "", "commands:"]
        lines += [f"  {cmd:<8} {summary}" for cmd, summary in SUMMARIES.items()]
        lines += ["", "flags:", "  --version: print the version and exit"]
        print("\n".join(lines))
        sys.exit(0)
    if "--version" in argv:
        print(f"est-ckpt {__version__}")
        sys.exit(0)
    unknown = next((arg for arg in argv if not arg.startswith("-")), None)
    _fail(_USAGE if unknown is None else f"unknown command '{unknown}'. {_USAGE}", 2)


def parse(argv: Sequence[str]) -> Invocation:
    """Parses a whole command line (`argv[0]` is the program); exits 2 on usage errors, 0 after help."""
    args = list(argv[1:])
    where = next((i for i, arg in enumerate(args) if arg in COMMANDS), None)
    if where is None:
        _overview(args)
    name = args.pop(where)
    module = _load(name)
    try:
        return Invocation(name, module, parser_for(name, module).parse(args))
    except app.UsageError as e:
        _fail(f"{e} (usage: est-ckpt {module.USAGE})", 2)
    raise AssertionError("unreachable")


def main(invocation: Invocation) -> int:
    """Runs a parsed command line; returns its exit code."""
    name, module, args = invocation
    try:
        remote.set_remote_timeout(args.remote_timeout)
        remote.remote_timeout()  # A bad EST_CKPT_REMOTE_TIMEOUT is a usage error before any work.
    except ValueError as e:
        _fail(str(e), 2)
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # A reader that went away shows here, while the error can still be handled.
        return code
    except app.UsageError as e:
        _fail(f"{e} (usage: est-ckpt {module.USAGE})", 2)
    except EstCkptError as e:
        _fail(e.cli_message or str(e), 1)
    except BrokenPipeError:
        raise
    except (OSError, MemoryError) as e:
        _fail(str(e) or type(e).__name__, 1)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    return 1


def run() -> None:
    """Runs the command line of this process (`entry.run`, the console script, comes here)."""
    quiet_native_logs()
    try:
        try:
            app.run(main, flags_parser=parse)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # `est-ckpt ... | head`: stop quietly; the interpreter's last flush must not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own run (parsing, importing the command or TensorFlow): one line too.
        _fail("interrupted", EXIT_INTERRUPTED)
