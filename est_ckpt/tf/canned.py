"""Canned Estimators on est_ckpt's scaffolds, in the spirit of `tf.estimator.add_metrics`.

`LinearClassifier`, `DNNClassifier`, `DNNLinearCombinedClassifier` and the
other canned Estimators build their own `EstimatorSpec`, so there is no place
to pass `make_tf2_scaffold()`. `with_tf2_checkpoints(estimator)` returns a new
`tf.estimator.Estimator` with the same `model_fn`, `model_dir`, `config`,
`params` and warm-start settings, whose spec in every mode (train, evaluate,
predict, export) carries `make_tf2_scaffold(..., config=config)` merged into
the spec's own scaffold::

    est = tf.estimator.DNNClassifier(hidden_units=[8], feature_columns=cols, model_dir=d)
    est = est_ckpt.with_tf2_checkpoints(est, also_save_tf1=True)
    est.train(input_fn, steps=100)   # continues a name-based model_dir; saves object-based

`with_tf1_checkpoints(estimator)` is the way back (`make_tf1_scaffold`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from est_ckpt.tf.runtime import tf, v1
from est_ckpt.tf.scaffold import check_saving, make_tf1_scaffold, make_tf2_scaffold, tf1_copy_dir

__all__ = ["with_tf2_checkpoints", "with_tf1_checkpoints", "apply_ckpt_format"]

# The wrapped Estimator keeps the one it was made from here, so wrapping it again (the way back
# with `with_tf1_checkpoints`, or other options) wraps the original rather than stacking scaffolds.
_ORIGINAL = "_est_ckpt_original_estimator"


def _check_estimator(function: str, estimator: Any) -> Any:
    base = v1().estimator.Estimator
    if not isinstance(estimator, base):
        raise TypeError(
            f"{function}(): 'estimator' must be a tf.estimator.Estimator (a canned one such as "
            f"tf.estimator.LinearClassifier, or your own), got {type(estimator).__name__}."
        )
    if type(estimator).__name__ == "TPUEstimator":
        raise TypeError(
            f"{function}(): TPUEstimator is not supported (its model_fn returns TPUEstimatorSpec); "
            "wrap a tf.estimator.Estimator."
        )
    original = getattr(estimator, _ORIGINAL, None)
    return original if original is not None else estimator


def _spec_scaffold_kwargs(function: str, scaffold: Any) -> dict[str, Any]:
    """The spec scaffold's own pieces, as `make_tf2_scaffold(**kwargs)` takes them."""
    if scaffold.saver is not None:
        raise TypeError(
            f"{function}(): the model_fn's EstimatorSpec has a scaffold with its own saver "
            f"({type(scaffold.saver).__name__}); est_ckpt's scaffold provides the saver. Drop the "
            "spec's saver, or keep that Estimator as it is."
        )
    # `_user_init_fn` is what `Scaffold(copy_from_scaffold=...)` itself copies: the init_fn as given,
    # called with the new scaffold (its public `init_fn` is bound to the old one).
    return {
        "init_op": scaffold.init_op,
        "init_feed_dict": scaffold.init_feed_dict,
        "init_fn": getattr(scaffold, "_user_init_fn", None),
        "ready_op": scaffold.ready_op,
        "ready_for_local_init_op": scaffold.ready_for_local_init_op,
        "local_init_op": scaffold.local_init_op,
        "local_init_feed_dict": scaffold.local_init_feed_dict,
        "summary_op": scaffold.summary_op,
    }


def _rewrap(function: str, estimator: Any, warm_start_from: Any, make_scaffold: Callable[..., Any]):
    original = _check_estimator(function, estimator)
    own_settings = original._warm_start_settings  # what tf.estimator.add_metrics passes on too
    if warm_start_from is not None and own_settings is not None:
        raise ValueError(
            f"{function}(): the estimator already warm-starts from "
            f"{own_settings.ckpt_to_initialize_from!r} (its warm_start_from=) and warm_start_from="
            f"{warm_start_from!r} was given too: give one. The estimator's own settings are applied by "
            "TF as before; warm_start_from= here is est_ckpt's batched warm start, which also reads "
            "object-based checkpoints and object paths."
        )
    model_fn = original.model_fn  # bound to the original's params, as add_metrics does

    def wrapped_model_fn(features, labels, mode, params, config):
        del params  # the original's own, already bound in `model_fn`
        spec = model_fn(features, labels, mode, config)
        kwargs = _spec_scaffold_kwargs(function, spec.scaffold)
        return spec._replace(scaffold=make_scaffold(config=config, **kwargs))

    # The same API generation as the original: tf.estimator.Estimator for v2 (and custom)
    # Estimators, tf.compat.v1.estimator.Estimator (which keeps `export_savedmodel`) for v1 ones.
    v2_class = tf().estimator.Estimator
    estimator_class = v2_class if isinstance(original, v2_class) else v1().estimator.Estimator
    wrapped = estimator_class(
        model_fn=wrapped_model_fn,
        model_dir=original.model_dir,
        config=original.config,
        params=original.params,
        warm_start_from=own_settings,
    )
    setattr(wrapped, _ORIGINAL, original)
    return wrapped


def with_tf2_checkpoints(
    estimator: Any,
    *,
    also_save_tf1: Any = False,
    restore_legacy: bool = True,
    warm_start_from: Any = None,
    async_save: bool = False,
    save_on_signal: Sequence[int] = (),
):
    """Returns `estimator` saving object-based (TF2) checkpoints: a new `tf.estimator.Estimator`.

    Like `tf.estimator.add_metrics`, the result has the same `model_fn` (wrapped),
    `model_dir`, `config`, `params` and warm-start settings as `estimator`, which is
    left as it was. Every `EstimatorSpec` its `model_fn` returns (train, evaluate,
    predict, `export_saved_model`) gets `make_tf2_scaffold(also_save_tf1=...,
    restore_legacy=..., warm_start_from=..., config=config)` merged into the spec's
    own scaffold: the spec's `init_op`, `init_feed_dict`, `init_fn`, `ready_op`,
    `ready_for_local_init_op`, `local_init_op`, `local_init_feed_dict` and
    `summary_op` are kept. Works for every canned Estimator (v1 and v2) and for
    any Estimator whose specs carry no saver of their own.

    A model directory trained before (name-based) continues: the global step and
    every variable (optimizer slots included) are restored by name, and the next
    checkpoint is object-based (layout in docs/FORMAT.md).

    Warm-starting: `estimator`'s own `warm_start_from` (a `WarmStartSettings`) is
    kept and applied by TF as before. `warm_start_from=` here is est_ckpt's (a
    checkpoint path or `est_ckpt.warm_start_settings(...)`; it also reads
    object-based checkpoints), applied in one batched restore when the model dir
    has no checkpoint. Giving both is a `ValueError`.

    Wrapping an Estimator returned by `with_tf2_checkpoints`/`with_tf1_checkpoints`
    wraps its original again (scaffolds are not stacked).

    Args:
      estimator: a `tf.estimator.Estimator` (canned or not; not `TPUEstimator`).
      also_save_tf1: True also writes every checkpoint name-based under
        `<model_dir>/tf1/`; a string names that directory; False or None: no copy.
      restore_legacy: restore a name-based checkpoint of the model dir by variable name.
      warm_start_from: est_ckpt's warm start (see above), or None.
      async_save, save_on_signal: saves written in the background, and a save and
        a clean stop on these signals (see `make_tf2_scaffold`).

    Returns:
      A new `tf.estimator.Estimator` (a `tf.compat.v1.estimator.Estimator` for a
      v1 `estimator`, as `tf.compat.v1.estimator.LinearClassifier`).

    Raises:
      TypeError: `estimator` is not an Estimator, `also_save_tf1` is neither a bool
        nor a path, or (when its `model_fn` runs) a spec's scaffold has its own saver.
      ValueError: `warm_start_from` is given and `estimator` has warm-start settings.
    """

    # Checked now, not at the first model_fn call inside train().
    tf1_copy_dir("with_tf2_checkpoints", also_save_tf1)
    saving = check_saving("with_tf2_checkpoints", async_save, save_on_signal)

    def make_scaffold(**kwargs):
        return make_tf2_scaffold(
            also_save_tf1=also_save_tf1,
            restore_legacy=restore_legacy,
            warm_start_from=warm_start_from,
            **saving,
            **kwargs,
        )

    return _rewrap("with_tf2_checkpoints", estimator, warm_start_from, make_scaffold)


def with_tf1_checkpoints(
    estimator: Any,
    *,
    warm_start_from: Any = None,
    async_save: bool = False,
    save_on_signal: Sequence[int] = (),
):
    """Returns `estimator` saving name-based (TF1) checkpoints again: the way back.

    As `with_tf2_checkpoints`, with `make_tf1_scaffold(warm_start_from=...,
    config=config)`: an object-based checkpoint of the model dir (one written
    through `with_tf2_checkpoints`) is restored by the variable names recorded in
    its object graph, and the next checkpoint is name-based, readable by the plain
    canned Estimator. Passing an Estimator returned by `with_tf2_checkpoints`
    wraps its original.

    Args:
      estimator: a `tf.estimator.Estimator` (canned or not; not `TPUEstimator`).
      warm_start_from: est_ckpt's warm start, as for `with_tf2_checkpoints`.
      async_save, save_on_signal: as for `with_tf2_checkpoints`.

    Returns:
      A new `tf.estimator.Estimator`.

    Raises:
      TypeError, ValueError: as `with_tf2_checkpoints`.
    """

    saving = check_saving("with_tf1_checkpoints", async_save, save_on_signal)

    def make_scaffold(**kwargs):
        return make_tf1_scaffold(warm_start_from=warm_start_from, **saving, **kwargs)

    return _rewrap("with_tf1_checkpoints", estimator, warm_start_from, make_scaffold)


def apply_ckpt_format(
    estimator: Any,
    *,
    ckpt_format: str,
    restore_legacy: bool = True,
    warm_start_from: Any = None,
    async_save: bool = False,
    save_on_signal: Sequence[int] = (),
):
    """`--ckpt_format` applied to `estimator` (what `est_ckpt.flags.estimator_from_flags` calls).

    `tf2` is `with_tf2_checkpoints(estimator, restore_legacy=..., warm_start_from=...)`,
    `both` adds `also_save_tf1=True`, `tf1` is `with_tf1_checkpoints(estimator, warm_start_from=...)`.

    Raises:
      ValueError: `ckpt_format` is none of `tf2`, `tf1`, `both`.
    """
    saving = {"async_save": async_save, "save_on_signal": save_on_signal}
    if ckpt_format == "tf1":
        return with_tf1_checkpoints(estimator, warm_start_from=warm_start_from, **saving)
    if ckpt_format not in ("tf2", "both"):
        raise ValueError(f"ckpt_format must be 'tf2', 'tf1' or 'both' (got {ckpt_format!r}).")
    return with_tf2_checkpoints(
        estimator,
        also_save_tf1=ckpt_format == "both",
        restore_legacy=restore_legacy,
        warm_start_from=warm_start_from,
        **saving,
    )
