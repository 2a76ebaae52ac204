"""Save on preemption: a signal (a scheduler's SIGTERM) makes the next step boundary save, and training stop.

`install(signals)` (from `make_tf2_scaffold(save_on_signal=...)`, in the main
thread, where Python runs signal handlers) replaces those signals' handlers.
`watch(session)` (from the scaffold saver's restore or `init_fn`, which get the
raw `tf.compat.v1.Session` that `MonitoredSession` runs) makes that session's
next `run` after a signal raise `tf.errors.OutOfRangeError` instead of running:
the step in flight has finished, `MonitoredSession` treats the error as the end
of input, its hooks' `end()` run (the `CheckpointSaverHook` saves the last
step, waiting for an asynchronous write) and `Estimator.train` returns
normally. A restarted job continues from that step.

A process that never opened a watched session (a worker or parameter server
of a cluster: only the chief restores and saves) has nothing to save: there
the signal gets its previous handler at once (by default, the process ends).
`preemption_signal()` (`est_ckpt.preemption_signal`) tells which signal stopped training, so a launch script can exit
instead of going on to evaluate within the scheduler's grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from typing import Any, Optional, Sequence

_lock = threading.Lock()
_previous: dict[int, Any] = {}
_sessions: weakref.WeakSet[Any] = weakref.WeakSet()
_pending: list[int] = []
_received: list[int] = []
_log = logging.getLogger("est_ckpt")


def check_signals(caller: str, signals: Any) -> tuple[int, ...]:
    """The signal numbers of `save_on_signal`.

    Raises:
      TypeError: it is not a sequence of signals.
    """
    if signals is None:
        return ()
    if isinstance(signals, (int, signal.Signals)):
        signals = (signals,)
    try:
        out = tuple(signal.Signals(s) for s in signals)
    except (TypeError, ValueError):
        raise TypeError(
            f"{caller}(): 'save_on_signal' must be a tuple of signals, e.g. (signal.SIGTERM,) "
            f"(got {signals!r})."
        ) from None
    if signal.SIGKILL in out or getattr(signal, "SIGSTOP", None) in out:
        raise TypeError(f"{caller}(): SIGKILL and SIGSTOP cannot be caught; save_on_signal cannot take them.")
    return tuple(int(s) for s in out)


def install(caller: str, signals: Sequence[int]) -> None:
    """Handles `signals` from now on (once per signal however many scaffolds ask).

    Raises:
      RuntimeError: not in the main thread, where Python runs signal handlers.
    """
    with _lock:
        for signum in signals:
            if signum in _previous:
                continue
            try:
                _previous[signum] = signal.signal(signum, _handle)
            except ValueError:
                raise RuntimeError(
                    f"{caller}(save_on_signal=...) must be called in the main thread (Python runs signal "
                    "handlers there): call Estimator.train, and so model_fn, from the main thread."
                ) from None


def _handle(signum: int, frame: Any) -> None:
    del frame
    _received.append(signum)
    if not len(_sessions):
        # Nothing is trained and saved here (a worker, a parameter server): the signal's own handler.
        previous = _previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, None)
            return
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        os.kill(os.getpid(), signum)
        return
    _pending.append(signum)
    _log.warning(
        "est_ckpt: %s received: the next step boundary saves a checkpoint and training stops.",
        signal.Signals(signum).name,
    )


def watch(session: Any) -> None:
    """Makes `session.run` stop training at the first run after a handled signal (once per session)."""
    if session in _sessions:
        return
    run = session.run

    def run_or_stop(*args: Any, **kwargs: Any) -> Any:
        if _pending:
            import tensorflow as tf

            name = signal.Signals(_pending.pop()).name
            _pending.clear()
            raise tf.errors.OutOfRangeError(
                None, None, f"est_ckpt: {name} received: saving the last step and stopping training"
            )
        return run(*args, **kwargs)

    session.run = run_or_stop
    _sessions.add(session)


def preemption_signal() -> Optional[int]:
    """The signal that stopped training (`save_on_signal`), or None."""
    return _received[-1] if _received else None


__all__ = ["check_signals", "install", "preemption_signal", "watch"]
