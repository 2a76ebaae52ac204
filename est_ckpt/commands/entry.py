"""The `est-ckpt` console script: Ctrl-C is one line and exit code 130 from its first instruction on.

Until the command line tool is imported there is nothing to clean up, so an
interrupt ends the process at once; from then on it unwinds as
`KeyboardInterrupt`, so temporary files are removed, and `main` reports it.
Once the command has finished, the interpreter's shutdown ignores Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys

# `quiet_native_logs` and `EXIT_INTERRUPTED` live in `est_ckpt.commands.process`; importable from here too.
from est_ckpt.commands.process import EXIT_INTERRUPTED, quiet_native_logs

__all__ = ["EXIT_INTERRUPTED", "quiet_native_logs", "run"]


def _interrupted_while_starting(signum, frame) -> None:
    del signum, frame
    sys.stderr.write("est-ckpt: error: interrupted\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def run() -> None:
    """Console-script entry point (`est-ckpt`, `python -m est_ckpt`)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # Not when the shell made SIGINT ignored (`cmd &`).
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    from est_ckpt.commands import main  # noqa: PLC0415 - after the handler, so imports are covered.

    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, previous)
    try:
        main.run()
    finally:
        # The command has finished (and said how): a Ctrl-C during the interpreter's shutdown (TensorFlow's
        # exit handlers) would only kill it with a traceback and no exit code of ours.
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
