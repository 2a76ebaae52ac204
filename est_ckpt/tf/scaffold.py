"""Scaffolds that move a `model_fn` between name-based and object-based checkpoints.

`make_tf2_scaffold()` in a `model_fn` (or before a `MonitoredTrainingSession`)
saves object-based checkpoints in the layout of the migration guide's
Estimator example, restores the model directory's older name-based
checkpoints by variable name, and can keep writing a name-based copy for TF1
consumers. `make_tf1_scaffold()` is the way back. The on-disk layout is
documented in docs/FORMAT.md.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from est_ckpt.errors import GraphModeError
from est_ckpt.tf.runtime import v1

__all__ = ["check_saving", "make_tf2_scaffold", "make_tf1_scaffold", "tf1_copy_dir"]


def _check_kwargs(function: str, scaffold_kwargs: dict) -> None:
    if "saver" in scaffold_kwargs:
        raise TypeError(
            f"{function}() got 'saver': the scaffold's saver is what {function} provides (it saves and "
            "restores both checkpoint formats). Drop 'saver=', or use a plain tf.compat.v1.train.Scaffold "
            "if you need your own Saver."
        )


def _check_graph_mode(function: str) -> None:
    if v1().executing_eagerly():
        raise GraphModeError(
            f"{function}() builds a Saver for a graph, and TensorFlow is executing eagerly here. Call it "
            "inside your Estimator's model_fn, or inside `with tf.Graph().as_default():` before "
            "tf.compat.v1.train.MonitoredTrainingSession."
        )


_RETENTION = ("keep_checkpoint_max", "keep_checkpoint_every_n_hours")


def _check_config(function: str, config: Any) -> None:
    # What the saver reads of it; so a MonitoredSession without Estimator can say its retention too.
    if config is not None and not all(hasattr(config, name) for name in _RETENTION):
        raise TypeError(
            f"{function}(): 'config' must be the tf.estimator.RunConfig that model_fn receives as its "
            f"`config` argument (without Estimator: any object with {' and '.join(_RETENTION)}), or None "
            f"(got {type(config).__name__})."
        )


def check_saving(function: str, async_save: Any, save_on_signal: Any) -> dict:
    """The `async_save` and `save_on_signal` keyword arguments of `ScaffoldSaver`, checked.

    Raises:
      TypeError: `async_save` is not a bool, or `save_on_signal` names no catchable signals.
    """
    from est_ckpt.tf import preemption

    if not isinstance(async_save, bool):
        raise TypeError(f"{function}(): 'async_save' must be True or False (got {async_save!r}).")
    return {"async_save": async_save, "save_on_signal": preemption.check_signals(function, save_on_signal)}


def _saving(function: str, async_save: Any, save_on_signal: Any) -> dict:
    """`check_saving`, then the signal handlers installed (in the main thread, or a RuntimeError)."""
    from est_ckpt.tf import preemption

    saving = check_saving(function, async_save, save_on_signal)
    preemption.install(function, saving["save_on_signal"])
    return saving


def _scaffold(saver, scaffold_kwargs: dict):
    user_init_fn = scaffold_kwargs.pop("init_fn", None)

    # TF runs `init_fn` only when no checkpoint was restored: exactly when a warm start applies.
    def init_fn(scaffold, session):
        saver.run_warm_start(session)
        if user_init_fn is not None:
            user_init_fn(scaffold, session)

    return v1().train.Scaffold(saver=saver, init_fn=init_fn, **scaffold_kwargs)


def tf1_copy_dir(caller: str, also_save_tf1: Any) -> Optional[str]:
    """Where the name-based copy goes: `""` for `<model_dir>/tf1/`, a path, or None for no copy.

    Args:
      caller: the public function checking its argument (named in the error).
      also_save_tf1: True, False/None, or a non-empty directory path.

    Raises:
      TypeError: `also_save_tf1` is none of those.
    """
    if also_save_tf1 is True:
        return ""
    if also_save_tf1 is False or also_save_tf1 is None:
        return None
    if isinstance(also_save_tf1, str) and also_save_tf1:
        return also_save_tf1
    raise TypeError(
        f"{caller}(): 'also_save_tf1' must be a bool or a directory path (got {also_save_tf1!r})."
    )


def make_tf2_scaffold(
    objects: Optional[dict[str, Any]] = None,
    *,
    also_save_tf1: Union[bool, str] = False,
    restore_legacy: bool = True,
    warm_start_from: Any = None,
    config: Any = None,
    async_save: bool = False,
    save_on_signal: Sequence[int] = (),
    **scaffold_kwargs: Any,
):
    """Returns a `Scaffold` whose checkpoints are object-based (TF2).

    Call it inside `model_fn` (graph mode) and pass it as
    `EstimatorSpec(scaffold=...)`, or pass it to `MonitoredTrainingSession`.
    What it saves is decided when the scaffold is finalized, so variables
    created after this call are saved too.

    Everything TF's default Saver saves is saved: the variables, and the
    SaveableObjects of `GraphKeys.SAVEABLE_OBJECTS` (mutable and dense hash
    tables as the tables themselves, custom SaveableObjects through TF's
    `SaveableCompatibilityConverter`), each tensor recording the key TF's
    Saver gives it as its `full_name`; and a `save_counter`, so that
    `tf.train.Checkpoint(<same objects>).restore(path)` matches the checkpoint.

    Args:
      objects: None saves every global variable but the global step as
        `tf.train.Checkpoint(var_list={variable_name: variable}, step=global_step)`
        (partitioned variables part by part, optimizer slots by their names),
        and each SaveableObject under `var_list/<its name>`.
        A dict saves `tf.train.Checkpoint(**objects, step=global_step)` (a value
        may be a SaveableObject); global variables reachable from no object are
        not saved, with one warning naming them. With a Keras model among the
        objects, the root also lists the model's children, so that
        `model.load_weights(path)` restores it.
      also_save_tf1: True also writes every checkpoint name-based (keys are the
        variable names, `global_step` included) to `<model_dir>/tf1/` with its own
        `checkpoint` state file and the same step; a string names that directory.
        RunConfig's `keep_checkpoint_max` applies to both.
      restore_legacy: restore a name-based checkpoint (a model directory trained
        before the switch, or evaluate's `checkpoint_path`) by variable name,
        global step included; the next save is object-based.
      warm_start_from: a checkpoint path or `est_ckpt.warm_start_settings(...)`;
        applied in one batched restore when the session starts with no checkpoint.
      config: the `tf.estimator.RunConfig` that `model_fn(features, labels,
        mode, config)` receives: its `keep_checkpoint_max` and
        `keep_checkpoint_every_n_hours` apply to every save. None: those of the
        Estimator found on the call stack when the first save runs (see
        `est_ckpt.tf.savers`), or TF's Saver defaults outside an Estimator.
      async_save: each save during training copies the saved state to host
        memory in one session run (the only time training waits) and a
        background thread writes it with est_ckpt's own writer (both layouts with
        `also_save_tf1`), publishes it atomically, then updates the `checkpoint`
        state file and retention. One write is in flight at a time (the next
        save waits for it, and logs that it does); a `CheckpointSaverHook`'s last
        save (`train()`'s end) returns once written; a failed write raises
        `AsyncSaveError` at the next save. Host memory: one copy of the saved state.
      save_on_signal: signals (e.g. `(signal.SIGTERM,)`) on which training saves
        at the next step boundary and stops cleanly, so a restarted job continues
        from that step (`est_ckpt.tf.preemption`; `est_ckpt.preemption_signal()`
        tells a launch script it happened). A process that saves nothing (a
        cluster's worker or parameter server) gets the signal's previous handler.
        Call from the main thread.
      **scaffold_kwargs: passed to `tf.compat.v1.train.Scaffold` (`init_op`,
        `local_init_op`, `summary_op`, `init_fn`, ...).

    Returns:
      A `tf.compat.v1.train.Scaffold`.

    Raises:
      TypeError: `saver` is given in `scaffold_kwargs`, `objects` is not a
        dict, or `config` is not a `RunConfig`.
      est_ckpt.errors.GraphModeError: called while TensorFlow executes eagerly
        (outside `model_fn` and any `tf.Graph`).
      est_ckpt.errors.UnsavedStateError: at `Scaffold.finalize`, when some
        state cannot be saved (named in the message): a SaveableObject that no
        object of `objects` reaches, a table with a variable's name
        (`objects=None`), an entry of `GraphKeys.SAVEABLE_OBJECTS` that is not a
        SaveableObject, a tensor that cannot be given its TF1 key.
    """
    _check_kwargs("make_tf2_scaffold", scaffold_kwargs)
    _check_config("make_tf2_scaffold", config)
    _check_graph_mode("make_tf2_scaffold")
    if objects is not None and not isinstance(objects, dict):
        raise TypeError(
            f"make_tf2_scaffold(): 'objects' must be a dict of name -> trackable (got {objects!r})."
        )
    tf1_dir = tf1_copy_dir("make_tf2_scaffold", also_save_tf1)
    saving = _saving("make_tf2_scaffold", async_save, save_on_signal)
    from est_ckpt.tf.savers import TF2, ScaffoldSaver

    saver = ScaffoldSaver(
        layout=TF2,
        objects=objects,
        restore_legacy=restore_legacy,
        also_save_tf1=tf1_dir,
        warm_start_from=warm_start_from,
        config=config,
        **saving,
    )
    return _scaffold(saver, scaffold_kwargs)


def make_tf1_scaffold(
    *,
    warm_start_from: Any = None,
    config: Any = None,
    async_save: bool = False,
    save_on_signal: Sequence[int] = (),
    **scaffold_kwargs: Any,
):
    """Returns a `Scaffold` whose checkpoints are name-based (TF1) and that restores object-based ones.

    The way back from `make_tf2_scaffold`: an object-based checkpoint is
    restored by the variable names (`full_name`s) recorded in its object graph,
    with an op built before the graph is finalized.

    Args:
      warm_start_from: a checkpoint path or `est_ckpt.warm_start_settings(...)`;
        applied in one batched restore when the session starts with no checkpoint.
      config: the `tf.estimator.RunConfig` `model_fn` receives, whose retention
        applies (as for `make_tf2_scaffold`).
      async_save, save_on_signal: as for `make_tf2_scaffold`.
      **scaffold_kwargs: passed to `tf.compat.v1.train.Scaffold`.

    Returns:
      A `tf.compat.v1.train.Scaffold`.

    Raises:
      TypeError: `saver` is given in `scaffold_kwargs`, or `config` is not a `RunConfig`.
      est_ckpt.errors.GraphModeError: called while TensorFlow executes eagerly.
    """
    _check_kwargs("make_tf1_scaffold", scaffold_kwargs)
    _check_config("make_tf1_scaffold", config)
    _check_graph_mode("make_tf1_scaffold")
    saving = _saving("make_tf1_scaffold", async_save, save_on_signal)
    from est_ckpt.tf.savers import TF1, ScaffoldSaver

    saver = ScaffoldSaver(layout=TF1, warm_start_from=warm_start_from, config=config, **saving)
    return _scaffold(saver, scaffold_kwargs)
