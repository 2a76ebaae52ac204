"""The `est-ckpt` console script: Ctrl-C is one line and exit code 130 from its first instruction on.

Until the command line tool is imported there is nothing to clean up, so an
interrupt ends the process at once; from then on it unwinds as
`KeyboardInterrupt`, so temporary files are removed, and `main` reports it.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130

# TF's C++ logging: 0 all, 1 hides INFO, 2 also WARNING, 3 also ERROR. Importing TF 2.15
# logs the oneDNN notice and CPU features (INFO), TensorRT's absence (WARNING) and, on every
# machine, "Unable to register cuDNN/cuFFT/cuBLAS factory" (ERROR, harmless): only 3 hides it all.
_QUIET_LOG_LEVEL = "3"


def quiet_native_logs() -> None:
    """Hides TensorFlow's C++ start-up logs, unless the user set `TF_CPP_MIN_LOG_LEVEL` themselves.

    TF reads the level once, when it is first imported: call this before that.
    The `est-ckpt` command line calls it; the library itself never changes a
    program's logging. The oneDNN notice is hidden with the rest; oneDNN itself
    stays on (`TF_ENABLE_ONEDNN_OPTS` is left alone: turning it off changes
    numerics).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _QUIET_LOG_LEVEL)


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
    main.run()
