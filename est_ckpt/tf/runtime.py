"""Lazy access to TensorFlow and Estimator, imported only by the features that need them."""

from __future__ import annotations

import functools
import importlib.util

from est_ckpt.errors import MissingDependencyError

# What each feature needs beyond the core, and the extra that installs it.
ESTIMATOR_EXTRA = (
    "pip install 'est-ckpt[estimator]'  (TensorFlow 2.13-2.15 and tensorflow-estimator of the same minor)"
)
TENSORFLOW_EXTRA = "pip install 'est-ckpt[estimator]', or any tensorflow>=2.13 (graph mode via tf.compat.v1)"


def require(feature: str, *, estimator_too: bool = False) -> None:
    """Raises `MissingDependencyError` naming what to install if `feature` cannot run here; imports nothing.

    Args:
      feature: what the user asked for, named in the message (`"est-ckpt demo"`).
      estimator_too: the feature needs tensorflow-estimator as well as TensorFlow.
    """
    missing = [
        m for m in ("tensorflow",) + (("tensorflow_estimator",) if estimator_too else ()) if not _found(m)
    ]
    if missing:
        raise MissingDependencyError(
            f"{feature} needs {' and '.join(missing)}, which is not installed here: "
            + (ESTIMATOR_EXTRA if estimator_too else TENSORFLOW_EXTRA)
            + "."
        )


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def tf():
    """Returns the `tensorflow` module, importing it on first use.

    Raises:
      MissingDependencyError: TensorFlow is not installed (an `ImportError`).
    """
    try:
        import tensorflow
    except ImportError as e:
        raise MissingDependencyError(
            f"est_ckpt's TensorFlow layer needs TensorFlow ({e}): {TENSORFLOW_EXTRA}."
        ) from e
    return tensorflow


@functools.cache
def estimator():
    """Returns `tensorflow_estimator`'s `estimator` module, checking it matches TensorFlow.

    Raises:
      MissingDependencyError: (an `ImportError`) Estimator is missing or of
        another minor version than TF. TF 2.15 is the last release with
        Estimator: `tensorflow-estimator` 2.15 fails to import on TF 2.16+.
    """
    tf_version = tf().__version__
    try:
        from tensorflow_estimator import estimator as est
    except ImportError as e:
        minor = ".".join(tf_version.split(".")[:2])
        if _after_estimator(tf_version):
            what = (
                f"Estimator, which TensorFlow {tf_version} no longer has (TF 2.15 is the last release with it; "
                f"it runs on Python 3.9 to 3.11): in such an environment, {ESTIMATOR_EXTRA}"
            )
        else:
            what = (
                f"tensorflow-estimator of the same minor version as TensorFlow {tf_version} ({e}): "
                f"pip install 'tensorflow-estimator=={minor}.*', or {ESTIMATOR_EXTRA}"
            )
        raise MissingDependencyError(
            f"this part of est_ckpt (WarmStartSettings, canned-Estimator wrappers, the demo) needs {what}. "
            "est_ckpt.warm_start, make_tf2_scaffold and the CLI need no Estimator."
        ) from e
    est_version = _distribution_version("tensorflow-estimator") or tf_version
    if est_version.split(".")[:2] != tf_version.split(".")[:2]:
        raise MissingDependencyError(
            f"tensorflow-estimator {est_version} does not match TensorFlow "
            f"{tf_version}: install the same minor version of both (TF 2.13 to 2.15)."
        )
    return est


def _after_estimator(tf_version: str) -> bool:
    """Whether `tf_version` is 2.16 or newer, where no tensorflow-estimator exists."""
    try:
        major, minor = (int(part) for part in tf_version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 16)


def _distribution_version(name: str):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def v1():
    """Returns `tf.compat.v1`."""
    return tf().compat.v1
