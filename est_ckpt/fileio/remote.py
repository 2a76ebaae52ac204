"""Remote paths (`gs://`, `s3://`, ...): `tf.io.gfile`, with one-line errors and bounded waits.

Imported by `est_ckpt.fileio` for `scheme://` paths only; TensorFlow (and
tensorflow-io, for `s3://`) is imported on first use. Every TensorFlow I/O
error becomes the `OSError` it stands for, in one line with the endpoint and
the settings to check; a metadata request that gets no answer within
`remote_timeout()` seconds is a `RemoteTimeoutError`, so a store that cannot
be reached fails in bounded time.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import threading
import time
from typing import Iterator, Optional

from est_ckpt.errors import MissingDependencyError, RemoteTimeoutError

# How long a remote store may take to answer one metadata request (exists, stat, list) before est_ckpt
# gives up naming the endpoint: a client with no reachable endpoint retries for minutes otherwise.
REMOTE_TIMEOUT_ENV = "EST_CKPT_REMOTE_TIMEOUT"
DEFAULT_REMOTE_TIMEOUT = 30.0
_remote_timeout: Optional[float] = None
# Requests that say whether the store answers at all; reads, writes and copies are bounded by their size.
_BOUNDED = frozenset({"exists", "isdir", "listdir", "stat", "glob"})
# What to check, by scheme: the client's own settings.
_SETTINGS = {
    "s3": "S3_ENDPOINT (for a server of your own), AWS_REGION, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS, and CLOUD_STORAGE_EMULATOR_ENDPOINT for an emulator",
}


def set_remote_timeout(seconds: Optional[float]) -> None:
    """Sets the remote timeout for this process (None: `EST_CKPT_REMOTE_TIMEOUT`, else 30 s)."""
    global _remote_timeout
    if seconds is not None and not seconds > 0:
        raise ValueError(f"the remote timeout must be a positive number of seconds (got {seconds!r}).")
    _remote_timeout = seconds


def remote_timeout() -> float:
    """Seconds a remote store may take to answer one metadata request."""
    if _remote_timeout is not None:
        return _remote_timeout
    raw = os.environ.get(REMOTE_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_REMOTE_TIMEOUT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{REMOTE_TIMEOUT_ENV}={raw!r}: expected a positive number of seconds.")
    return value


def _scheme(path: str) -> str:
    return str(path).split("://", 1)[0]


def _endpoint(path: str) -> str:
    scheme = _scheme(path)
    if scheme == "s3":
        custom = os.environ.get("S3_ENDPOINT")
        return f"S3_ENDPOINT={custom}" if custom else "the default AWS S3 endpoint (S3_ENDPOINT is not set)"
    if scheme == "gs":
        custom = os.environ.get("CLOUD_STORAGE_EMULATOR_ENDPOINT")
        return f"CLOUD_STORAGE_EMULATOR_ENDPOINT={custom}" if custom else "Google Cloud Storage"
    return f"the {scheme}:// file system"


def settings_hint(path: str) -> str:
    """What to check when the store behind `path` fails: its endpoint and the client's settings."""
    settings = _SETTINGS.get(_scheme(path), "the file system's settings")
    return f"the endpoint is {_endpoint(path)}; check the network and {settings}"


@functools.cache
def gfile():
    try:
        import tensorflow as tf  # noqa: PLC0415 - only remote paths pay for TF.
    except ImportError as e:
        raise MissingDependencyError(
            f"scheme:// paths (gs://, s3://, hdfs://) are read through TensorFlow's file systems, and "
            f"TensorFlow does not import here ({e}). Install it: pip install 'est-ckpt[estimator]' (or any "
            "tensorflow>=2.13; tensorflow-io for s3://)."
        ) from None

    try:
        # TF no longer implements `s3://` itself: tensorflow-io's filesystem plugin,
        # registered on import, does. Without it the CLI could not read an S3 model dir.
        import tensorflow_io  # noqa: F401, PLC0415
    except ImportError:
        pass
    return _RemoteFiles(tf.io.gfile, tf.errors)


class _RemoteFiles:
    """`tf.io.gfile`, raising each TensorFlow I/O error as the `OSError` it stands for.

    Every caller (and the CLI, which reports an `OSError` in one line) handles
    `OSError`s; `tf.errors.NotFoundError` and its kin are not `OSError`s, so a
    missing bucket or object would otherwise escape as a traceback.
    """

    def __init__(self, gfile, errors):
        self._gfile = gfile
        self._errors = errors
        self._errnos = {
            errors.NotFoundError: errno.ENOENT,
            errors.AlreadyExistsError: errno.EEXIST,
            errors.PermissionDeniedError: errno.EACCES,
            errors.UnauthenticatedError: errno.EACCES,
            errors.ResourceExhaustedError: errno.ENOSPC,
            errors.DeadlineExceededError: errno.ETIMEDOUT,
        }

    @contextlib.contextmanager
    def translated(self, path: str) -> Iterator[None]:
        try:
            yield
        except self._errors.OpError as e:
            # OSError(errno, ...) is the matching subclass: FileNotFoundError for ENOENT. TF's messages
            # span lines; a user reads one.
            code = self._errnos.get(type(e), errno.EIO)
            message = " ".join(e.message.split())
            if code in (errno.EIO, errno.ETIMEDOUT, errno.EACCES):
                message += f" ({settings_hint(path)})"
            raise OSError(code, message, path) from e

    def __getattr__(self, name: str):
        function = getattr(self._gfile, name)

        def call(path, *args, **kwargs):
            with self.translated(path):
                if name in _BOUNDED:
                    result = _bounded(name, path, lambda: function(path, *args, **kwargs))
                else:
                    result = function(path, *args, **kwargs)
            return _RemoteFile(result, path, self) if name == "GFile" else result

        return call


def _bounded(name: str, path: str, request):
    """Runs one remote request, giving up after `remote_timeout()` seconds with a `RemoteTimeoutError`.

    The request runs in a daemon thread: a client stuck retrying an
    unreachable endpoint cannot be cancelled, but it no longer holds up the
    caller (nor the process's exit).
    """
    seconds = remote_timeout()
    outcome: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = request()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread.
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name=f"est-ckpt remote {name}", daemon=True).start()
    deadline = time.monotonic() + seconds
    # In slices: a signal (Ctrl-C) that the stuck thread received is handled only when this thread runs.
    while not done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            break
    if not done.is_set():
        raise RemoteTimeoutError(
            f"{path}: no answer within {seconds:g} s ({settings_hint(path)}). To wait longer, pass "
            f"--remote_timeout=SECONDS or set {REMOTE_TIMEOUT_ENV}."
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _RemoteFile:
    """A `tf.io.gfile.GFile` whose reads, writes and close raise `OSError`s (see `_RemoteFiles`)."""

    def __init__(self, file, path: str, files: _RemoteFiles):
        self._file, self._path, self._files = file, path, files

    def __getattr__(self, name: str):
        method = getattr(self._file, name)

        def call(*args, **kwargs):
            with self._files.translated(self._path):
                return method(*args, **kwargs)

        return call

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        # Closing is when S3 and GCS upload what was written: its errors matter most.
        with self._files.translated(self._path):
            self._file.close()
