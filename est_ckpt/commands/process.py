"""What the `est-ckpt` process sets up before anything else: its exit codes and TensorFlow's quiet start."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import signal
import sys
import threading

__all__ = ["EXIT_INTERRUPTED", "quiet_native_logs"]

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
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _QUIET_LOG_LEVEL)
    # TF 2.16+ logs the oneDNN notice (INFO, and absl's "before absl::InitializeLog()" line)
    # from its shared libraries whatever TF_CPP_MIN_LOG_LEVEL says: only silencing stderr
    # while they load hides them, where INFO is hidden (1 and up). Python errors raised by
    # the import still surface as exceptions.
    if not any(isinstance(f, _QuietNativeImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietNativeImport(silence=level.strip() not in ("", "0")))


class _QuietNativeImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow (and tensorflow-io) with Ctrl-C held until it is done, and stderr silenced if asked.

    A KeyboardInterrupt raised inside the native initialisation of TF's extension
    modules can surface as an ImportError that TF catches and ignores: the
    interrupt would be lost. So SIGINT is blocked while they load, and delivered
    (as `KeyboardInterrupt`) the moment the import returns.
    """

    _NOISY = ("tensorflow", "tensorflow_io")

    def __init__(self, *, silence: bool = True):
        self.silence = silence

    def find_spec(self, fullname, path, target=None):
        if fullname not in self._NOISY:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Guarded(spec.loader, self.silence)
        return spec


class _Guarded(importlib.abc.Loader):
    def __init__(self, loader, silence: bool):
        self._loader, self._silence = loader, silence

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        hold = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hold else None
        saved = None
        try:
            if self._silence:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self._loader.exec_module(module)
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            if hold:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a held Ctrl-C is delivered now
