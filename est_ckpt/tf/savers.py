"""The Saver behind `make_tf2_scaffold` and `make_tf1_scaffold`.

`ScaffoldSaver` is a `tf.compat.v1.train.Saver`, so every place TF and
Estimator use `scaffold.saver` (the `CheckpointSaverHook`, `SessionManager`,
`evaluate`'s copied scaffold, the distributed scaffold merge, SavedModel export)
keeps working. It saves in one layout (object-based or name-based) and restores
either layout, deciding at restore time from the checkpoint's index, read
without TensorFlow. Every op it may run is built in `build()`, which
`Scaffold.finalize` calls before the graph is finalized: TF's own fallback
builds a new Saver at restore time and fails in a finalized graph.

Retention (`keep_checkpoint_max`, `keep_checkpoint_every_n_hours`) comes from
the `config=` the scaffold was made with: the `RunConfig` that
`model_fn(features, labels, mode, config)` receives. Without it the saver
looks for the Estimator on the call stack when it first saves
(`est_ckpt.tf.estimator_stack`, the one place that reads it), a fallback
kept because nothing else reaches it: Estimator gives its retention only to
the default Saver it creates when `scaffold.saver` is None, a scaffold's saver
must exist when `model_fn` returns (`evaluate` and `export_saved_model` use it
as is), and a `model_fn` without a `config` argument never sees the RunConfig.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Optional, Sequence

import tensorflow as tf
from tensorflow.python.checkpoint import graph_view
from tensorflow.python.checkpoint import util as checkpoint_util
from tensorflow.python.training import checkpoint_management, training_util
from tensorflow.python.training.saving import saveable_object, saveable_object_util
from tensorflow.python.util import compat

from est_ckpt import fileio
from est_ckpt.errors import UnmappedVariablesError
from est_ckpt.format import bundle, keys, state_file
from est_ckpt.format.checkpoint import read_checkpoint
from est_ckpt.tf import async_save as background
from est_ckpt.tf import estimator_stack, preemption, tf1_copy
from est_ckpt.tf import saveables as state_lib
from est_ckpt.tf.by_name import (
    KeyedRestoreBuilder,
    expected_by_key,
    keys_by_name,
    mismatch,
    missing_message,
    raise_mismatches,
    variable_name,
)
from est_ckpt.tf.engine import build_warm_start
from est_ckpt.tf.request import WarmStartRequest

_tf1 = tf.compat.v1

TF2 = "tf2"
TF1 = "tf1"
DEFAULT_TF1_SUBDIR = tf1_copy.DEFAULT_TF1_SUBDIR


class ScaffoldSaver(_tf1.train.Saver):
    """Saves one checkpoint layout and restores both.

    Args:
      layout: `"tf2"` saves object-based, `"tf1"` saves name-based.
      objects: for `"tf2"`, the objects of `tf.train.Checkpoint(**objects, step=global_step)`;
        None means `var_list={name: variable}` over all global variables but the step.
      restore_legacy: restore name-based checkpoints by variable name (`"tf2"` layout).
      also_save_tf1: a directory that also receives a name-based copy of every save.
      warm_start_from: warm-start source, run in the scaffold's `init_fn`.
      config: the Estimator's `RunConfig`, whose retention applies; None looks
        for the Estimator on the call stack at the first save.
      async_save: take each training save as a host copy and write it in the
        background (`est_ckpt.tf.async_save`).
      save_on_signal: signal numbers whose arrival saves at the next step and
        stops training (`est_ckpt.tf.preemption`; installed by the caller).
    """

    def __init__(
        self,
        *,
        layout: str,
        objects: Optional[dict[str, Any]] = None,
        restore_legacy: bool = True,
        also_save_tf1: Optional[str] = None,
        warm_start_from: Any = None,
        config: Any = None,
        async_save: bool = False,
        save_on_signal: Sequence[int] = (),
    ) -> None:
        super().__init__(sharded=True, defer_build=True, save_relative_paths=True)
        self._writer = background.Writer() if async_save else None
        self._snapshot: Optional[background.Snapshot] = None
        self._watch_sessions = bool(save_on_signal)
        self._restored_as_is: Optional[str] = None  # a checkpoint in this saver's layout, just restored
        self._config = config
        self._layout = layout
        self._objects = dict(objects) if objects is not None else None
        self._restore_legacy = restore_legacy
        self._also_save_tf1 = also_save_tf1
        # Checked now, in model_fn; planned against the graph's variables in `build()`.
        self._warm_start = None if warm_start_from is None else WarmStartRequest.of(warm_start_from)
        self._warm_start_op = None
        self._name_saver: Optional[_tf1.train.Saver] = None
        self._name_builder: Optional[KeyedRestoreBuilder] = None
        self._primary_keys: frozenset[str] = frozenset()
        # key -> (variable name, dtype name, shape) of what the primary saver restores, checked before
        # TF sees the file so that a changed model gets one clear error.
        self._expected: dict[str, tuple[str, str, tuple[int, ...]]] = {}
        self._policy_applied = False
        self._tf1_copy: Optional[tf1_copy.Tf1Copy] = None
        # The TF2 layout's `save_counter`: incremented before each save, started where nothing restores it.
        self._count_op = None
        self._counter_init = None
        self._state_keys: frozenset[str] = frozenset()

    # -- building -----------------------------------------------------------------------

    def build(self) -> None:
        """Builds the save op, both restore paths and the warm-start op (graph mode)."""
        if self._is_built:
            return
        global_step = _tf1.train.get_global_step()
        name_vars: Sequence[Any]
        if self._layout == TF2:
            root, states, alias = self._checkpoint_root(global_step)
            counter, self._count_op, self._counter_init = state_lib.make_save_counter()
            state_lib.attach_save_counter(root, counter)
            saveables = state_lib.frozen_saveables(root, states, alias)
            self._var_list = saveables
            self._primary_keys = frozenset(spec.name for s in saveables for spec in s.specs)
            for s in saveables:
                shape = getattr(s.op, "shape", None)
                if len(s.specs) == 1 and not s.specs[0].slice_spec and shape is not None:
                    if shape.is_fully_defined() and s.specs[0].name != keys.OBJECT_GRAPH_KEY:
                        owner = variable_name(s.op) if hasattr(s.op, "handle") else s.specs[0].name
                        self._expected[s.specs[0].name] = (
                            owner,
                            s.specs[0].dtype.name,
                            tuple(shape.as_list()),
                        )
            name_vars = self._saved_variables(root) + [state.saveable for state in states]
        else:
            name_vars = list(_tf1.global_variables()) + list(
                _tf1.get_collection(_tf1.GraphKeys.SAVEABLE_OBJECTS)
            )
        self._name_builder = KeyedRestoreBuilder()
        self._name_saver = _tf1.train.Saver(
            var_list=list(name_vars),
            sharded=False,
            builder=self._name_builder,
            save_relative_paths=True,
            allow_empty=True,
            name="est_ckpt_by_name",
        )
        state_names = {
            key
            for item in name_vars
            if isinstance(item, saveable_object.SaveableObject)
            for key in state_lib.tf1_keys(item)
        }
        self._state_keys = frozenset(
            spec.name for spec in self._name_builder.specs if spec.name in state_names
        )
        if self._layout == TF1:
            self._primary_keys = frozenset(spec.name for spec in self._name_builder.specs)
            self._expected = expected_by_key(self._name_builder.specs)
        if self._warm_start is not None:
            self._warm_start_op, _ = build_warm_start(self._warm_start, var_list=None, install=False)
        if self._writer is not None:
            saved = (  # what the primary saver saves, as SaveableObjects
                self._var_list
                if self._layout == TF2
                else saveable_object_util.validate_and_slice_inputs(
                    saveable_object_util.op_list_to_dict(name_vars)
                )
            )
            self._snapshot = background.Snapshot(saved)
        super().build()

    def _checkpoint_root(self, global_step):
        """`(root, the states it saves, the Keras model whose children the root also lists)`."""
        extra = {} if global_step is None else {"step": global_step}
        states = state_lib.collected_state()
        if self._objects is not None:
            objects, given = state_lib.wrap_objects(self._objects)
            given_ids = {id(state.saveable) for state in given}
            states = given + [state for state in states if id(state.saveable) not in given_ids]
            root = tf.train.Checkpoint(**objects, **extra)
            return (
                root,
                state_lib.check_reachable(root, states, self._objects),
                state_lib.keras_model(objects),
            )
        var_list = {}
        for var in _tf1.global_variables():
            if global_step is not None and var is global_step:
                continue
            var_list[variable_name(var)] = var
        state_lib.add_to_var_list(var_list, states)
        return tf.train.Checkpoint(var_list=var_list, **extra), states, None

    def _saved_variables(self, root) -> list[Any]:
        """Global variables the object graph of `root` reaches; warns once about the others."""
        if self._objects is None:
            return list(_tf1.global_variables())
        reachable = {id(obj) for obj in checkpoint_util.list_objects(graph_view.ObjectGraphView(root))}
        saved, unsaved = [], []
        for var in _tf1.global_variables():
            (saved if id(var) in reachable else unsaved).append(var)
        if unsaved:
            names = ", ".join(f"'{variable_name(v)}'" for v in unsaved)
            warnings.warn(
                f"make_tf2_scaffold: {len(unsaved)} global variable(s) are reachable from none of the "
                f"objects {sorted(self._objects)} and will NOT be saved: {names}. Attach them to one of "
                "the objects, or pass objects=None to save every global variable by name.",
                UserWarning,
                stacklevel=2,
            )
        return saved

    # -- warm start -----------------------------------------------------------------------

    def run_warm_start(self, session) -> None:
        """Starts the save counter and runs the warm-start op, if any (from the scaffold's `init_fn`)."""
        self._adopt(session)
        if self._counter_init is not None:
            session.run(self._counter_init)
        if self._warm_start_op is not None:
            session.run(self._warm_start_op)

    # -- saving -----------------------------------------------------------------------

    def _apply_retention(self) -> None:
        if self._policy_applied:
            return
        self._policy_applied = True
        policy = estimator_stack.retention_policy(self._config)
        if policy is None:
            return
        max_to_keep, every_n_hours = policy
        for saver in (self, self._name_saver):
            if saver is None or saver.saver_def is None:
                continue
            saver.saver_def.max_to_keep = max_to_keep or 0
            saver.saver_def.keep_checkpoint_every_n_hours = every_n_hours
            saver._next_checkpoint_time = time.time() + every_n_hours * 3600

    def save(
        self,
        sess,
        save_path,
        global_step=None,
        latest_filename=None,
        meta_graph_suffix="meta",
        write_meta_graph=True,
        write_state=True,
        strip_default_attrs=False,
        save_debug_info=False,
    ):
        """Saves like `Saver.save`; with `also_save_tf1`, also writes the name-based copy.

        With `async_save`, a training save (`write_state`, the default state file)
        returns once the state is copied to host memory; the session's `close()`
        waits for the last write.

        Raises:
          AsyncSaveError: the previous background write failed.
        """
        self._apply_retention()
        if self._writer is not None:
            if self._writer.busy:
                _tf1.logging.warning("est_ckpt: this save waits for %s", self._writer.describe())
            self._writer.wait()
            if write_state and latest_filename is None:
                return self._save_async(sess, save_path, global_step, meta_graph_suffix, write_meta_graph)
        if self._count_op is not None and write_state:
            sess.run(self._count_op)
        prefix = super().save(
            sess,
            save_path,
            global_step=global_step,
            latest_filename=latest_filename,
            meta_graph_suffix=meta_graph_suffix,
            write_meta_graph=write_meta_graph,
            write_state=write_state,
            strip_default_attrs=strip_default_attrs,
            save_debug_info=save_debug_info,
        )
        # SavedModel export saves with write_state=False: the copy is for training checkpoints only.
        if prefix is not None and self._also_save_tf1 is not None and write_state:
            self._save_tf1_copy(sess, prefix, save_path, global_step)
        return prefix

    def _save_async(self, sess, save_path, global_step, meta_graph_suffix, write_meta_graph) -> str:
        if self._count_op is not None:
            sess.run(self._count_op)
        if global_step is not None and not isinstance(global_step, compat.integral_types):
            global_step = training_util.global_step(sess, global_step)
        prefix = save_path if global_step is None else f"{save_path}-{global_step}"
        # The step just restored, saved again at start-up, is on disk whole as it is: not rewritten (a rewrite
        # would unname it for a moment). Else the one time training waits: the host copy.
        same, self._restored_as_is = self._restored_as_is, None
        unchanged = same is not None and fileio.same_file(bundle.index_path(prefix), bundle.index_path(same))
        values = None if unchanged else self._snapshot.take(sess)
        if write_meta_graph:
            with sess.graph.as_default():
                self.export_meta_graph(checkpoint_management.meta_graph_filename(prefix, meta_graph_suffix))

        def write() -> None:
            if values is not None:
                background.write_checkpoint(prefix, self._snapshot, values)
            # Only a whole checkpoint is recorded; retention deletes what the state file no longer names.
            self._RecordLastCheckpoint(prefix)
            state_file.write_state(fileio.dirname(prefix), prefix, self.last_checkpoints)
            self._MaybeDeleteOldCheckpoints(meta_graph_suffix=meta_graph_suffix)
            if self._also_save_tf1 is not None:
                self._save_tf1_copy(None, prefix, save_path, global_step)

        self._writer.submit(prefix, write)
        return prefix

    def _adopt(self, session) -> None:
        """The session that trains (restored, or initialised by `init_fn`): a signal stops its next run; its
        `close()` (after the hooks' `end()`, so after training's last save) first waits for the write in flight."""
        if self._watch_sessions:
            preemption.watch(session)
        if self._writer is None or getattr(session, "_est_ckpt_waits_on_close", False):
            return
        close, writer = session.close, self._writer

        def close_after_the_write() -> None:
            try:
                writer.wait()
            finally:
                close()

        session.close = close_after_the_write
        session._est_ckpt_waits_on_close = True

    def _save_tf1_copy(self, sess, prefix: str, save_path: str, global_step) -> None:
        if self._tf1_copy is None:
            self._tf1_copy = tf1_copy.Tf1Copy(self._also_save_tf1, self._name_saver)
        self._tf1_copy.save(sess, prefix, save_path, global_step)

    # -- restoring -----------------------------------------------------------------------

    def restore(self, sess, save_path) -> None:
        """Restores an object-based or a name-based checkpoint with prebuilt ops.

        Raises:
          ValueError: `save_path` is None.
          UnmappedVariablesError: the checkpoint lacks variables of the model.
          AmbiguousNameError: an object-based checkpoint holds a variable name more than once.
        """
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        self._adopt(sess)
        if not self._is_built:
            # SavedModel export restores with the scaffold's saver before anything finalized the graph.
            self.build()
        info = read_checkpoint(save_path)
        if self._primary_keys and self._primary_keys <= set(info.tensors):
            raise_mismatches(
                info,
                [
                    mismatch(owner, key, (dtype, shape), info.tensors[key])
                    for key, (owner, dtype, shape) in self._expected.items()
                    if (info.tensors[key].dtype, tuple(info.tensors[key].shape)) != (dtype, shape)
                ],
            )
            super().restore(sess, info.prefix)
            self._restored_as_is = info.prefix
            return
        if info.format == TF1 and self._layout == TF2 and not self._restore_legacy:
            missing = sorted(self._primary_keys - set(info.tensors))
            raise UnmappedVariablesError(
                missing_message(info, missing, hint="it is name-based and restore_legacy=False")
            )
        feed_keys, feed_slices = keys_by_name(info, self._name_builder.specs, state_keys=self._state_keys)
        builder = self._name_builder
        sess.run(
            self._name_saver.saver_def.restore_op_name,
            {
                self._name_saver.saver_def.filename_tensor_name: info.prefix,
                builder.keys_tensor: feed_keys,
                builder.slices_tensor: feed_slices,
            },
        )
        if self._counter_init is not None:
            # A name-based checkpoint (or one written before save_counter) has no count: start at 0.
            sess.run(self._counter_init)
