"""Planning a warm start without TensorFlow: which checkpoint key initialises each target variable.

The rules are listed in `est_ckpt.mapping`'s docstring. Planning is
O(number of variables + number of keys): every lookup is a dict lookup
(`rules.AssignmentMap`, `names.NameIndex`) and all rename rules are tried by
one compiled alternation (`rules.RenameRules`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from est_ckpt.errors import MappingError, TransformError
from est_ckpt.format import checkpoint, keys
from est_ckpt.mapping.names import NameIndex
from est_ckpt.mapping.plan import Assignment, Target, Unmapped, WarmStartPlan
from est_ckpt.mapping.rules import AssignmentMap, RenameRule, RenameRules
from est_ckpt.mapping.rules_file import Rules, RulesArg, load_rules
from est_ckpt.mapping.transforms import bind

# `{target: (source names, transforms)}`: transforms for named targets, tried before any rules file.
Computed = Mapping[str, tuple[tuple[str, ...], Sequence[Mapping]]]

TargetsArg = Union[Iterable[Union[str, Target]], Mapping[str, Any], checkpoint.CheckpointInfo]


def plan_mapping(
    source: Union[str, checkpoint.CheckpointInfo],
    targets: TargetsArg,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    rules: RulesArg = None,
    computed: Optional[Computed] = None,
) -> WarmStartPlan:
    """Plans which checkpoint key initialises each target variable, without TensorFlow.

    Args:
      source: the checkpoint to warm-start from: a `CheckpointInfo`, a model
        directory or a prefix (name-based or object-based).
      targets: the new model's variables: names, `Target`s, a mapping
        `{name: (shape, dtype)}` (`None` parts are not checked), or a
        `CheckpointInfo` of the new model (see `targets_from_checkpoint`).
      assignment_map: `{source: target}` in `tf.compat.v1.train.init_from_checkpoint`'s
        grammar: exact names, `'old_scope/': 'new_scope/'`, `'/': 'new_scope/'`,
        `'old_scope/': '/'`. A source may be a TF1 name, a recorded `full_name`
        or an object path (`'model/layer_with_weights-0/kernel'`, `'vars/0'`).
      rename_rules: ordered `(regex, replacement)` pairs over target names; the
        first regex matching a whole name gives its source name: the
        replacement with its group references (`\\1`, `\\g<1>`, `\\g<name>`;
        no other escapes) filled in, e.g. `(r'new/(.*)', r'old/\\1')`; a `None`
        replacement leaves that variable alone.
      var_name_to_prev_var_name: TF's `{target: source}` exact renames (of
        `tf.estimator.WarmStartSettings`); an `assignment_map` entry for the
        same target is refused.
      rules: a rules file, a preset's name (`'lstm'`, `'bert'`) or `Rules`
        (`load_rules`): rules with value transforms, tried after
        `assignment_map` and before `rename_rules`; the first rule whose
        sources all exist gives the value. Rules that fit no variable at all
        are an error.
      computed: `{target: (source names, transforms)}` for named targets
        (optimizer slots following their variable's transforms).

    Returns:
      The `WarmStartPlan`; call `raise_for_errors()` to refuse a faulty one.

    Raises:
      MappingError: `assignment_map` or `rename_rules` is malformed.
      CheckpointNotFoundError, CorruptCheckpointError: `source` cannot be read.
    """
    info = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    target_list = _targets(targets)
    amap = AssignmentMap(assignment_map, {t.name for t in target_list}, var_name_to_prev_var_name)
    rules_file = None if rules is None else load_rules(rules)
    rules = RenameRules(list(rename_rules or ()))
    index = NameIndex(info)
    assignments: list[Assignment] = []
    unmapped: list[Unmapped] = []
    skipped: list[str] = []
    transform_errors: list[str] = []
    used_keys: set = set()
    used_rules: set = set()
    # The hot loop of a 100,000-variable plan: locals and positional tuples on purpose.
    lookup, apply_rules, resolve = amap.lookup, rules.apply, index.resolve
    add_assignment, add_used = assignments.append, used_keys.update
    for name, shape, dtype in target_list:
        source_name, via = lookup(name) if amap.active else (None, None)
        if source_name is None and (rules_file is not None or computed):
            done = _transformed(index, name, shape, dtype, rules_file, computed, used_rules)
            if done is not None:
                if isinstance(done, str):
                    transform_errors.append(done)
                else:
                    t = done.transform
                    add_used(done.source_keys if t is None else [k for ks in t.keys for k in ks])
                    add_assignment(done)
                continue
        if source_name is None:
            matched, renamed = apply_rules(name)
            if matched:
                if renamed is None:
                    skipped.append(name)
                    continue
                source_name, via = renamed, "rule"
            else:
                source_name, via = name, "name"
        found, ambiguous = resolve(source_name, shape=shape)
        if found is None:
            unmapped.append(Unmapped(name, source_name, via, ambiguous))
            continue
        found_keys = found[0]
        add_used(found_keys)
        add_assignment(
            Assignment(
                name,
                found_keys[0] if len(found_keys) == 1 else ",".join(found_keys),
                found_keys,
                source_name,
                via,
                shape,
                dtype,
                found[1],
                found[2],
                found[3],
            )
        )
    return WarmStartPlan(
        checkpoint=info.prefix,
        format=info.format,
        assignments=tuple(assignments),
        unmapped=tuple(unmapped),
        skipped=tuple(skipped),
        unused_sources=tuple(k for k in index.tensors if k not in used_keys),
        unused_mappings=tuple(
            amap.unused()
            + rules.unused()
            + (
                [f"rules {rules_file.name!r} (none of its {len(rules_file.rules)} rule(s) fit a variable)"]
                if rules_file is not None and not used_rules and target_list
                else []
            )
        ),
        transform_errors=tuple(transform_errors),
        # Only error messages need the closest names: skip the work for a clean plan.
        candidates=index.candidates() if unmapped else (),
    )


def _transformed(
    index: NameIndex,
    name: str,
    shape,
    dtype,
    rules_file: Optional[Rules],
    computed: Optional[Computed],
    used_rules: set,
) -> Union[None, str, Assignment]:
    """The `Assignment` of the first rule (or `computed` entry) whose sources all resolve; a message if its
    transforms do not fit; None if no rule gives `name` a value."""
    tried = []
    if computed and name in computed:
        tried.append((None, *computed[name]))
    if rules_file is not None:
        tried.extend(rules_file.candidates(name))
    for rule, sources, ops in tried:
        found = [index.resolve(s)[0] for s in sources]
        if any(f is None for f in found):
            continue
        try:
            transform = bind(
                ops,
                sources,
                [tuple(f[1]) for f in found],
                [f[2] for f in found],
                target=name,
                target_shape=shape,
                params=rules_file.numbers if rules_file is not None else {},
            )
        except TransformError as e:
            return str(e)
        if dtype is not None and transform.dtype != dtype:
            return f'\'{name}\' <- {", ".join(map(repr, sources))}: the transforms give {transform.dtype}, the target is {dtype}; add {{"cast": "{dtype}"}}.'
        if rule is not None:
            used_rules.add(rule)
        transform = dataclasses.replace(
            transform, keys=tuple(tuple(f[0]) for f in found), part_axes=tuple(f[3] for f in found)
        )
        first = found[0]
        if not transform.steps and len(sources) == 1:
            transform = (
                None  # a rename: the source's value as it is (linked, restored, slots mapped as usual)
            )
        return Assignment(
            name,
            first[0][0] if len(first[0]) == 1 else ",".join(first[0]),
            tuple(first[0]),
            sources[0],
            "rule",
            shape,
            dtype,
            tuple(first[1]) if transform is None else transform.shape,
            first[2] if transform is None else transform.dtype,
            first[3],
            transform,
        )
    return None


def _targets(targets: TargetsArg) -> list[Target]:
    if isinstance(targets, checkpoint.CheckpointInfo):
        return targets_from_checkpoint(targets)
    if isinstance(targets, Mapping):
        out = [
            Target(name, spec[0], spec[1])
            if type(spec) is tuple and type(spec[0]) is tuple and type(spec[1]) is str
            else spec
            if isinstance(spec, Target)
            else Target(name, *_shape_dtype(spec))
            for name, spec in targets.items()
        ]
    else:
        out = [Target(t) if isinstance(t, str) else t for t in targets]
    for t in out:
        if not isinstance(t, Target):
            raise TypeError(f"targets must be names or Target objects (got {t!r}).")
    if len({t.name for t in out}) != len(out):
        seen: set = set()
        for t in out:
            if t.name in seen:
                raise MappingError(f"target variable '{t.name}' is listed twice.")
            seen.add(t.name)
    return out


def _shape_dtype(spec) -> tuple[Optional[tuple[int, ...]], Optional[str]]:
    if spec is None:
        return None, None
    shape, dtype = spec
    if shape is not None and type(shape) is not tuple:
        shape = tuple(int(d) for d in shape)
    return shape, (None if dtype is None else str(dtype))


def targets_from_checkpoint(
    info: checkpoint.CheckpointInfo, index: Optional[NameIndex] = None
) -> list[Target]:
    """The variables of a new model, as its checkpoint records them.

    Names are TF1 keys, or for an object-based checkpoint the recorded
    `full_name` (the object path where that name is ambiguous; parts saved one
    by one become their whole variable). The object graph, slot variables and
    `save_counter` are left out: they are never warm-started. `index`: `info`'s
    `NameIndex`, where the caller has built it.
    """
    index = NameIndex(info) if index is None else index
    out: list[Target] = []
    if info.format == "tf1":
        return [Target(t.key, tuple(t.shape), t.dtype) for t in index.tensors.values()]
    if info.format == "keras":  # every dataset, slots too: by Keras's name where known and unique, else key
        return [
            Target(t.name if t.name and len(index.by_name[t.name]) == 1 else t.key, tuple(t.shape), t.dtype)
            for t in index.tensors.values()
        ]
    done: set = set()
    for key, t in index.tensors.items():
        if key in done or t.slot is not None or not keys.is_variable_key(key):
            continue
        if t.object_path == "save_counter":
            continue
        named = index.by_name.get(t.name or "", [])
        if len(named) == 1:
            out.append(Target(t.name, tuple(t.shape), t.dtype))
        elif named:
            parts = index.parts(named)
            if parts is not None:
                out.append(Target(t.name, parts.shape, parts.dtype))
                done.update(named)
            else:
                out.append(Target(t.object_path, tuple(t.shape), t.dtype))
        else:
            out.append(Target(t.object_path or key, tuple(t.shape), t.dtype))
    return out


def map_checkpoints(
    source: Union[str, checkpoint.CheckpointInfo],
    target: Union[str, checkpoint.CheckpointInfo],
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    vars_to_warm_start: Optional[str] = None,
    rules: RulesArg = None,
) -> WarmStartPlan:
    """The dry run of a warm start: plans `target`'s variables against `source`, without TensorFlow.

    Args:
      source: the checkpoint (model dir or prefix) to warm-start from.
      target: a checkpoint or model dir of the new model; names, shapes and
        dtypes come from it (see `targets_from_checkpoint`).
      assignment_map, rename_rules, rules: as for `plan_mapping`.
      vars_to_warm_start: a regex; only target names it matches at their start
        (`re.match`, like `tf.compat.v1.get_collection`'s scope) are planned.
        A checkpoint does not record which variables are trainable, so unlike
        `warm_start`'s default this selects among all of them.

    Returns:
      The `WarmStartPlan` `warm_start` would apply.

    Raises:
      MappingError: `assignment_map`, `rename_rules` or `vars_to_warm_start` is malformed.
    """
    info = target if isinstance(target, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(target)
    targets = targets_from_checkpoint(info)
    if vars_to_warm_start:
        try:
            selector = re.compile(vars_to_warm_start)
        except re.error as e:
            raise MappingError(f"vars_to_warm_start {vars_to_warm_start!r} does not compile: {e}.") from None
        targets = [t for t in targets if selector.match(t.name)]
    return plan_mapping(
        source, targets, assignment_map=assignment_map, rename_rules=rename_rules, rules=rules
    )
