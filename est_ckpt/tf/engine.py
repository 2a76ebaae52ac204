"""The warm-start engine: executes a `WarmStartRequest` against the default graph, in one batched restore.

It plans the mapping with `est_ckpt.mapping` against the graph's variables
and builds ONE `RestoreV2` of every source key plus the assigns (or TF's own
vocabulary remapping for the variables that ask for it). `warm_start`,
`build_warm_start_op` (`est_ckpt.tf.warm_starting`), the scaffolds' warm start
and Estimator's `WarmStartSettings` all come here; nothing else builds a restore.
"""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.ops import variables as variables_lib
from tensorflow.python.training import warm_starting_util

from est_ckpt import fileio, mapping
from est_ckpt.errors import MappingError, UnusedMappingError
from est_ckpt.format import checkpoint
from est_ckpt.mapping import WarmStartPlan
from est_ckpt.tf import vocab_remap
from est_ckpt.tf.request import WarmStartRequest
from est_ckpt.tools import compute

__all__ = ["build_warm_start"]

_logger = tf.get_logger()


# -- reading the checkpoint once --------------------------------------------------------

_INFO_CACHE: dict[str, tuple[tuple, checkpoint.CheckpointInfo]] = {}


def _resolve(path: Union[str, os.PathLike]) -> str:
    """A model dir, prefix or SavedModel dir (as Estimator accepts) -> checkpoint prefix."""
    return checkpoint.resolve_checkpoint(os.fspath(path))


def _read_info(prefix: str) -> checkpoint.CheckpointInfo:
    # Estimator warm-starts every graph it builds (train, eval, predict): read the index once.
    index = prefix + ".index"
    stamp = (fileio.getsize(index), fileio.mtime(index))
    cached = _INFO_CACHE.get(prefix)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    info = checkpoint.read_checkpoint(prefix)
    _INFO_CACHE[prefix] = (stamp, info)
    return info


# -- the graph's variables ----------------------------------------------------------------


def _is_variable(x) -> bool:
    return isinstance(x, variables_lib.Variable) or resource_variable_ops.is_resource_variable(x)


def _select(vars_to_warm_start, var_list) -> list:
    """The variables `vars_to_warm_start` selects, as TF's `warm_start` collects them.

    None selects every trainable variable, as in TF; only those of
    `var_name_to_vocab_info` are then warm-started (see `build_warm_start`).
    """
    if var_list is not None:
        return list(var_list)
    v1 = tf.compat.v1
    if vars_to_warm_start is None or isinstance(vars_to_warm_start, str):
        return v1.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES, scope=vars_to_warm_start)
    # A list, as TF: it refuses tuples (and PartitionedVariables in the list) with a ValueError too.
    if isinstance(vars_to_warm_start, list):
        if all(isinstance(v, str) for v in vars_to_warm_start):
            out = []
            for scope in vars_to_warm_start:
                out += v1.get_collection(v1.GraphKeys.GLOBAL_VARIABLES, scope=scope)
            return out
        if all(_is_variable(v) for v in vars_to_warm_start):
            return list(vars_to_warm_start)
        raise ValueError(
            "`vars_to_warm_start` as a list must hold only variable names (regex scopes) or only "
            f"Variables (got {[type(v).__name__ for v in vars_to_warm_start]}); for a PartitionedVariable "
            "list its parts (`list(partitioned_variable)`)."
        )
    raise ValueError(
        f"`vars_to_warm_start` must be a regex string, a list of strings, a list of Variables or None "
        f"(got {type(vars_to_warm_start).__name__})."
    )


def _name_of(v) -> str:
    info = v._get_save_slice_info() if hasattr(v, "_get_save_slice_info") else None
    if info is not None:
        return info.full_name
    return v.op.name if not tf.executing_eagerly() else v.name.split(":")[0]


def _group(variables: Sequence) -> dict[str, list]:
    """`{full name: [variable or its parts]}`, partitions in offset order, duplicates dropped."""
    groups: dict[str, list] = {}
    seen: set = set()
    for v in variables:
        parts = list(v) if isinstance(v, variables_lib.PartitionedVariable) else [v]
        for p in parts:
            if id(p) in seen:
                continue
            seen.add(id(p))
            groups.setdefault(_name_of(p), []).append(p)
    for name, parts in groups.items():
        sliced = [p._get_save_slice_info() is not None for p in parts]
        if any(sliced) and not all(sliced) or (not any(sliced) and len(parts) > 1):
            raise MappingError(f"variable name '{name}' is shared by several variables of the graph.")
        if all(sliced):
            parts.sort(key=lambda p: list(p._get_save_slice_info().var_offset))
    return groups


def _target(name: str, parts: list, vocab: bool) -> mapping.Target:
    dtype = parts[0].dtype.base_dtype.name
    if vocab:
        # Vocabulary remapping changes the leading dimension: TF checks it itself.
        return mapping.Target(name, None, dtype)
    info = parts[0]._get_save_slice_info()
    if info is not None:
        return mapping.Target(name, tuple(info.full_shape), dtype)
    shape = parts[0].shape
    return mapping.Target(name, tuple(shape.as_list()) if shape.is_fully_defined() else None, dtype)


# -- the engine ---------------------------------------------------------------------------


def build_warm_start(
    config: WarmStartRequest, *, var_list, install: bool, note: str = ""
) -> tuple[Any, WarmStartPlan]:
    """Plans `config` against the default graph's variables and builds the restore and its assigns.

    Args:
      config: what to warm-start from, and how names map (built and checked once).
      var_list: the variables to warm-start; None selects them as TF does.
      install: make the assigns the variables' initializers (`warm_start`)
        instead of returning one op of them (`build_warm_start_op`).
      note: appended to the log line.

    Returns:
      `(op or None when installed, plan)`.

    Raises:
      MappingError: see `build_warm_start_op`.
    """
    # Eager, as TF's warm_start: the ops run now, so there are no initializers to install.
    install = install and not tf.executing_eagerly()
    selected = _group(_select(config.vars, var_list))
    groups = selected
    prev = config.prev
    if var_list is None and not config.vars:
        # TF: a falsy `vars_to_warm_start` (None, '', []) warm-starts only the vocabulary variables
        # among those selected, yet counts a rename of any selected variable as used.
        groups = {name: parts for name, parts in selected.items() if config.vocab.get(name)}
        prev = {t: s for t, s in prev.items() if t in groups or t not in selected or not s}
    prefix = _resolve(config.ckpt)
    info = _read_info(prefix)
    # TF counts an entry without a VocabInfo (None) as unused, like one naming no selected variable.
    unused_vocab = sorted(name for name, vocab in config.vocab.items() if not vocab or name not in groups)
    if unused_vocab:
        raise UnusedMappingError(
            f"var_name_to_vocab_info names variables that are not warm-started: {', '.join(unused_vocab)}. "
            f"Variables selected by vars_to_warm_start: {', '.join(sorted(groups)) or '(none)'}."
        )
    targets = [_target(name, parts, name in config.vocab) for name, parts in groups.items()]
    plan = mapping.plan_mapping(
        info,
        targets,
        assignment_map=config.amap,
        rename_rules=config.rules,
        var_name_to_prev_var_name=prev,
        rules=config.transforms,
    )
    plan.raise_for_errors()

    # One RestoreV2 for every (key, slice) any variable needs.
    requests: dict[tuple[str, str], int] = {}
    names, specs, dtypes = [], [], []

    def request(key: str, spec: str, dtype: str) -> int:
        at = requests.get((key, spec))
        if at is None:
            at = requests[(key, spec)] = len(names)
            names.append(key)
            specs.append(spec)
            dtypes.append(tf.as_dtype(dtype))
        return at

    work = []
    for a in plan.assignments:
        parts = groups[a.target]
        if a.transform is not None:
            work.append(("computed", a, parts, None))
        elif a.target in config.vocab and len(a.source_keys) > 1:
            # TF's kernel reads one tensor: remap the parts saved one by one after concatenating them.
            work.append(("vocab_parts", a, parts, [request(k, "", a.source_dtype) for k in a.source_keys]))
        elif a.target in config.vocab:
            work.append(("vocab", a, parts, None))
        elif len(a.source_keys) > 1:
            work.append(("concat", a, parts, [request(k, "", a.source_dtype) for k in a.source_keys]))
        else:
            slots = []
            for p in parts:
                slice_info = p._get_save_slice_info()
                slots.append(request(a.source_keys[0], slice_info.spec if slice_info else "", a.source_dtype))
            work.append(("direct", a, parts, slots))

    ops = []
    with tf.name_scope("est_ckpt_warm_start"):
        restored = []
        if names:
            # RestoreV2 runs on CPU; not colocating with the variables keeps them where they are.
            with tf.device("/cpu:0"):
                restored = tf.raw_ops.RestoreV2(
                    prefix=prefix, tensor_names=names, shape_and_slices=specs, dtypes=dtypes
                )
        for kind, a, parts, slots in work:
            if kind == "vocab":
                ops += _vocab(a, parts, config.vocab[a.target], prefix, install)
                continue
            if kind == "vocab_parts":
                whole = tf.concat([restored[i] for i in slots], axis=a.part_axis)
                values = vocab_remap.remap_initial_values(parts, whole, config.vocab[a.target])
            elif kind == "concat":
                whole = tf.concat([restored[i] for i in slots], axis=a.part_axis)
                values = [_slice_of(whole, p) for p in parts]
            elif kind == "computed":
                whole = _computed(info, a)
                values = [_slice_of(whole, p) for p in parts]
            else:
                values = [restored[i] for i in slots]
            for p, value in zip(parts, values):
                ops.append(_assign(p, value, install))
            _logger.debug("est_ckpt warm-start: %s <- %s (%s)", a.target, a.source_key, a.via)
    _logger.info("est_ckpt warm-started %s%s", plan.summary(), note)
    if install:
        # The initializers carry the assigns; a group op over thousands of them would only cost build time.
        return None, plan
    return tf.group(*ops, name="est_ckpt_warm_start") if ops else tf.no_op(name="est_ckpt_warm_start"), plan


def _computed(info, a: mapping.Assignment):
    """The value of a rule's transforms, computed by est_ckpt's reader when the op runs (`tools.compute`)."""
    transform = a.transform

    def value():
        return compute.evaluate(info, transform)

    with tf.device("/cpu:0"):
        out = tf.numpy_function(
            value, [], tf.as_dtype(transform.dtype), stateful=False, name="est_ckpt_transform"
        )
    out.set_shape(transform.shape)
    return out


def _slice_of(whole, part):
    info = part._get_save_slice_info()
    if info is None:
        return whole
    return tf.slice(whole, info.var_offset, info.var_shape)


def _assign(var, value, install: bool):
    value.set_shape(var.shape)
    if getattr(var, "is_distributed_variable", False):
        # A distribution strategy's variable (Estimator's train_distribute): its handle is
        # per replica, so every component gets the restored value.
        op = tf.group(*[tf.raw_ops.AssignVariableOp(resource=c.handle, value=value) for c in var.values])
    elif resource_variable_ops.is_resource_variable(var):
        op = tf.raw_ops.AssignVariableOp(resource=var.handle, value=value)
    else:
        op = tf.compat.v1.assign(var, value).op
    if install:
        # As `init_from_checkpoint` does: the variable's initializer now loads the checkpoint value.
        var._initializer_op = op
        var._initial_value = value
    return op


def _vocab(a: mapping.Assignment, parts: list, vocab_info, prefix: str, install: bool) -> list:
    """Delegates a vocabulary-remapped variable to TF's own `_warm_start_var_with_vocab`."""
    before = [p._initializer_op for p in parts]
    warm_starting_util._warm_start_var_with_vocab(
        parts if len(parts) > 1 else parts[0],
        current_vocab_path=vocab_info.new_vocab,
        current_vocab_size=vocab_info.new_vocab_size,
        prev_ckpt=prefix,
        prev_vocab_path=vocab_info.old_vocab,
        previous_vocab_size=vocab_info.old_vocab_size,
        current_oov_buckets=vocab_info.num_oov_buckets,
        prev_tensor_name=a.source_keys[0],
        initializer=vocab_info.backup_initializer,
        axis=vocab_info.axis,
    )
    ops = [p._initializer_op for p in parts]
    if not install:
        for p, op in zip(parts, before):
            p._initializer_op = op
    _logger.debug("est_ckpt warm-start: %s <- %s (vocabulary remapped by TF)", a.target, a.source_key)
    return ops
