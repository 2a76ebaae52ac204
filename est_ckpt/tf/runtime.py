"""Lazy access to TensorFlow and Estimator, imported only by the features that need them."""

from __future__ import annotations

import functools
import os

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


@functools.cache
def tf():
    """Returns the `tensorflow` module, importing it on first use."""
    import tensorflow

    return tensorflow


@functools.cache
def estimator():
    """Returns `tensorflow_estimator`'s `estimator` module, checking it matches TensorFlow.

    Raises:
      ImportError: Estimator is missing or of another minor version than TF.
        TF 2.15 is the last release with Estimator: `tensorflow-estimator` 2.15
        fails to import on TF 2.16+.
    """
    tf_version = tf().__version__
    try:
        from tensorflow_estimator import estimator as est
    except ImportError as e:
        raise ImportError(
            f"est_ckpt needs tensorflow-estimator of the same minor version as TensorFlow {tf_version} "
            "(supported: TF 2.13 to 2.15; TF 2.15 is the last release with Estimator): "
            f"pip install 'tensorflow-estimator=={'.'.join(tf_version.split('.')[:2])}.*' ({e})"
        ) from e
    est_version = _distribution_version("tensorflow-estimator") or tf_version
    if est_version.split(".")[:2] != tf_version.split(".")[:2]:
        raise ImportError(
            f"tensorflow-estimator {est_version} does not match TensorFlow "
            f"{tf_version}: install the same minor version of both (TF 2.13 to 2.15)."
        )
    return est


def _distribution_version(name: str):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def v1():
    """Returns `tf.compat.v1`."""
    return tf().compat.v1
