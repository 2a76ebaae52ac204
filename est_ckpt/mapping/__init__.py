"""Which checkpoint key initialises which variable: the warm-start plan, without TensorFlow.

A target variable (a name in the new model) gets its source name from, in
this order:

1. an exact `assignment_map` entry `{'old/name': 'new/name'}`;
2. the most specific scope entry of `assignment_map` (`{'old_scope/': 'new_scope/'}`,
   `{'/': 'new_scope/'}`, `{'old_scope/': '/'}`), with the grammar of
   `tf.compat.v1.train.init_from_checkpoint`;
3. the first of the ordered `rename_rules` `(regex, replacement)` whose regex
   matches the whole target name (`re.fullmatch`): the source name is
   `replacement` with its group references (`\\1`, `\\g<1>`, `\\g<name>`)
   filled in; a `None` replacement leaves the variable alone;
4. its own name.

(`var_name_to_prev_var_name`, TF's `{target: source}` renames, counts as
exact `assignment_map` entries.) Every `assignment_map` entry and rename rule
must apply to at least one variable.

A source name then resolves to one checkpoint key: a key itself (a TF1 name,
or a full object-based key), the `full_name` an object-based checkpoint
recorded for a variable, or an object path without its
`/.ATTRIBUTES/VARIABLE_VALUE` tail (`'vars/0'`). A name held by several keys is
refused (`AmbiguousNameError` lists them), except for the parts of a
partitioned variable saved one by one (`emb/part_0`, `emb/part_1`, ... all
recorded as `emb`), which together form that variable.

`key_for_name` and `name_for_key` are the same lookups for one name or key.

Planning is O(number of variables + number of keys): every lookup is a dict
lookup, scope entries are found by walking a name's own `/` prefixes, and all
rename rules are tried by one compiled alternation.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

from est_ckpt.errors import (
    AmbiguousNameError,
    MappingError,
    MismatchError,
    UnmappedVariablesError,
    UnusedMappingError,
)
from est_ckpt.format import checkpoint, keys

# The last edge of a part saved one by one: `emb/part_3` (escaped `emb.Spart_3`).
_PART = re.compile(r"^(.*)/part_(\d+)$")
# Numbered or named backreferences inside a pattern break when rules are combined.
_BACKREF = re.compile(r"\\\d|\(\?P=")
# `\g<name>`, `\g<1>`, `\1` in a replacement; any other escape is refused.
_TEMPLATE_TOKEN = re.compile(r"\\(?:g<(\w+)>|([1-9]\d?)|(.|\Z))", re.S)
# How many unmapped variables an error message spells out with their closest names.
_MAX_LISTED = 20

RenameRule = tuple  # (regex: str, replacement: Optional[str])


class Target(NamedTuple):
    """A variable of the new model.

    Attributes:
      name: its full name (for a partitioned variable, the name of the whole).
      shape: its full shape, or None when unknown (not checked then).
      dtype: TF's dtype name (`float32`), or None when unknown.
    """

    name: str
    shape: Optional[tuple[int, ...]] = None
    dtype: Optional[str] = None


class Assignment(NamedTuple):
    """One target variable and the checkpoint key(s) it is initialised from.

    Attributes:
      target: the target variable's name.
      source_key: the checkpoint key; for a variable whose parts were saved one
        by one, the parts' keys joined by `,`.
      source_keys: the key, or each part's key in part order.
      source_name: the name that was resolved (after maps and rules).
      via: how the source name was found: `'assignment_map'`, `'scope'`,
        `'rule'` or `'name'`.
      target_shape, target_dtype: what the variable expects (None: unknown).
      source_shape, source_dtype: what the checkpoint holds (whole variable).
      part_axis: the axis the parts of `source_keys` are concatenated on.
    """

    target: str
    source_key: str
    source_keys: tuple[str, ...]
    source_name: str
    via: str
    target_shape: Optional[tuple[int, ...]]
    target_dtype: Optional[str]
    source_shape: tuple[int, ...]
    source_dtype: str
    part_axis: int = 0

    @property
    def shape_ok(self) -> bool:
        return self.target_shape is None or tuple(self.target_shape) == tuple(self.source_shape)

    @property
    def dtype_ok(self) -> bool:
        return self.target_dtype is None or self.target_dtype == self.source_dtype


@dataclasses.dataclass(frozen=True)
class Unmapped:
    """A target variable without a usable source.

    Attributes:
      target: the variable's name.
      source_name: the name looked up in the checkpoint.
      via: how `source_name` was found (see `Assignment.via`).
      ambiguous_keys: when `source_name` is held by several keys, those keys.
    """

    target: str
    source_name: str
    via: str
    ambiguous_keys: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class WarmStartPlan:
    """What a warm start does, or would do: the dry run and the record of a real one.

    Attributes:
      checkpoint: the source checkpoint prefix.
      format: `'tf1'` or `'tf2'`.
      assignments: every target variable with a source, mismatched ones included.
      unmapped: target variables without a source (missing or ambiguous name).
      skipped: target variables a rename rule with a `None` replacement left alone.
      unused_sources: checkpoint keys no variable reads (never an error).
      unused_mappings: `assignment_map` entries and rename rules that matched no
        variable (an error).
    """

    checkpoint: str
    format: str
    assignments: tuple[Assignment, ...]
    unmapped: tuple[Unmapped, ...] = ()
    skipped: tuple[str, ...] = ()
    unused_sources: tuple[str, ...] = ()
    unused_mappings: tuple[str, ...] = ()
    candidates: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def mismatched(self) -> tuple[Assignment, ...]:
        """The assignments whose shapes or dtypes disagree."""
        return tuple(a for a in self.assignments if not (a.shape_ok and a.dtype_ok))

    @property
    def ambiguous(self) -> tuple[Unmapped, ...]:
        return tuple(u for u in self.unmapped if u.ambiguous_keys)

    @property
    def ok(self) -> bool:
        """Whether applying this plan would succeed."""
        return not (self.unmapped or self.unused_mappings or self.mismatched)

    def mapping(self) -> dict[str, str]:
        """`{target: source_key}` for every assignment."""
        return {a.target: a.source_key for a in self.assignments}

    def closest(self, name: str, n: int = 3) -> list[str]:
        """The checkpoint names and object paths closest to `name` (difflib).

        Only plans with unmapped variables keep the candidates (a clean plan
        skips that work), so this is for explaining `unmapped`.
        """
        return difflib.get_close_matches(name, self.candidates, n=n, cutoff=0.5)

    def raise_for_errors(self) -> None:
        """Raises the first kind of problem this plan has, listing every instance of it.

        Raises:
          AmbiguousNameError: a source name is held by several keys.
          UnmappedVariablesError: variables have no source in the checkpoint.
          MismatchError: a source and its target disagree in shape or dtype.
          UnusedMappingError: an `assignment_map` entry or rename rule matched nothing.
        """
        if self.ambiguous:
            lines = [
                f"  '{u.target}' <- '{u.source_name}': held by {', '.join(u.ambiguous_keys)}"
                for u in self.ambiguous
            ]
            raise AmbiguousNameError(
                f"{self.checkpoint}: {len(lines)} source name(s) are held by several keys of this object-based "
                "checkpoint, so the value to load is ambiguous:\n" + "\n".join(lines) + "\n"
                "Name the object path instead (for example "
                f"assignment_map={{'{keys.strip_value_suffix(self.ambiguous[0].ambiguous_keys[0])}': "
                f"'{self.ambiguous[0].target}'}})."
            )
        if self.unmapped:
            lines = []
            for u in self.unmapped[:_MAX_LISTED]:
                near = self.closest(u.source_name)
                hint = (
                    f"; closest in checkpoint: {', '.join(near)}"
                    if near
                    else "; nothing similar in checkpoint"
                )
                via = "" if u.source_name == u.target else f" (looked up as '{u.source_name}' via {u.via})"
                lines.append(f"  '{u.target}'{via}{hint}")
            if len(self.unmapped) > _MAX_LISTED:
                lines.append(f"  ... and {len(self.unmapped) - _MAX_LISTED} more")
            raise UnmappedVariablesError(
                f"{self.checkpoint}: {len(self.unmapped)} variable(s) have no source in this {self.format} "
                "checkpoint:\n" + "\n".join(lines) + "\n"
                "Map them with `assignment_map` ({'old_name': 'new_name'} or {'old_scope/': 'new_scope/'}) or "
                "`rename_rules`, or leave them out of `vars_to_warm_start`."
            )
        bad = self.mismatched
        if bad:
            lines = [
                f"  '{a.target}' {_describe(a.target_shape, a.target_dtype)} <- '{a.source_key}' "
                f"{_describe(a.source_shape, a.source_dtype)}"
                for a in bad
            ]
            raise MismatchError(
                f"{self.checkpoint}: {len(bad)} variable(s) disagree with their source in shape or dtype:\n"
                + "\n".join(lines)
                + "\nMap them to a source of the same shape and dtype, or leave them out of `vars_to_warm_start`."
            )
        if self.unused_mappings:
            raise UnusedMappingError(
                f"{self.checkpoint}: these mapping entries match no variable to warm-start: "
                + "; ".join(self.unused_mappings)
                + ". Perhaps they are misspelled, or the variable is not selected by `vars_to_warm_start`."
            )

    def summary(self) -> str:
        """One line of counts, for logs."""
        parts = sum(1 for a in self.assignments if len(a.source_keys) > 1)
        return (
            f"{len(self.assignments)} variable(s) from {self.format} checkpoint {self.checkpoint}"
            + (f" ({parts} assembled from parts saved one by one)" if parts else "")
            + f"; {len(self.skipped)} skipped by rename rules; {len(self.unused_sources)} checkpoint key(s) unused"
        )


def _describe(shape, dtype) -> str:
    return f"{'?' if shape is None else list(shape)} {dtype or '?'}"


# -- the source side --------------------------------------------------------------------


class _Source(NamedTuple):
    keys: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    axis: int = 0


class SourceIndex:
    """Dict lookups from names, object paths and keys of one checkpoint to its keys."""

    def __init__(self, info: checkpoint.CheckpointInfo):
        self.info = info
        self.tensors = {k: t for k, t in info.tensors.items() if k != keys.OBJECT_GRAPH_KEY}
        self.by_path: dict[str, str] = {}
        self.by_name: dict[str, list[str]] = {}
        self.tf1 = info.format != "tf2"
        if info.format == "tf2":
            for key, t in self.tensors.items():
                if keys.is_variable_key(key):
                    self.by_path[keys.strip_value_suffix(key)] = key
                if t.name:
                    self.by_name.setdefault(t.name, []).append(key)

    def candidates(self) -> tuple[str, ...]:
        names = set(self.by_name) | set(self.by_path) if self.info.format == "tf2" else set(self.tensors)
        return tuple(sorted(names))

    def resolve(self, name: str) -> tuple[Optional[_Source], tuple[str, ...]]:
        """Returns `(source, ())`, `(None, ambiguous_keys)` or `(None, ())` when missing."""
        if self.tf1:
            t = self.tensors.get(name)
            return (None if t is None else _Source((name,), t.shape, t.dtype, 0)), ()
        # A name may be a full key, an object path and a recorded full_name at once: it
        # resolves only if all of those agree on one key.
        hits: list[str] = []
        if name in self.tensors:
            hits.append(name)
        by_path = self.by_path.get(name)
        if by_path is not None and by_path not in hits:
            hits.append(by_path)
        named = self.by_name.get(name)
        if named is not None:
            if len(named) == 1:
                if named[0] not in hits:
                    hits.append(named[0])
            else:
                parts = self._parts(named)
                if parts is not None and not hits:
                    return parts, ()
                return None, tuple(sorted(set(named) | set(hits)))
        if len(hits) > 1:
            return None, tuple(sorted(hits))
        if not hits:
            return None, ()
        t = self.tensors[hits[0]]
        return _Source((t.key,), t.shape, t.dtype, 0), ()

    def _parts(self, ks: Sequence[str]) -> Optional[_Source]:
        """The parts of a variable saved one by one (`.../emb.Spart_N`), in order; else None."""
        numbered = {}
        for k in ks:
            t = self.tensors[k]
            if t.object_path is None or t.slot is not None:
                return None
            m = _PART.match(keys.split_path(t.object_path)[-1])
            if m is None:
                return None
            numbered[int(m.group(2))] = t
        if sorted(numbered) != list(range(len(ks))):
            return None
        ordered = [numbered[i] for i in range(len(ks))]
        shapes = [tuple(t.shape) for t in ordered]
        if len({len(s) for s in shapes}) != 1 or len({t.dtype for t in ordered}) != 1 or not shapes[0]:
            return None
        differ = [d for d in range(len(shapes[0])) if len({s[d] for s in shapes}) > 1]
        if len(differ) > 1:
            return None
        axis = differ[0] if differ else 0
        full = list(shapes[0])
        full[axis] = sum(s[axis] for s in shapes)
        return _Source(tuple(t.key for t in ordered), tuple(full), ordered[0].dtype, axis)


# -- the maps ------------------------------------------------------------------------------


class _Rules:
    """Ordered `(regex, replacement)` rules tried in one pass: the first full match wins."""

    def __init__(self, rules: Sequence[RenameRule]):
        self.rules: list = []
        self.templates: list = []
        for i, rule in enumerate(rules):
            if not (isinstance(rule, (tuple, list)) and len(rule) == 2):
                raise MappingError(f"rename_rules[{i}] must be a (regex, replacement) pair (got {rule!r}).")
            pattern, replacement = rule
            if replacement is not None and not isinstance(replacement, str):
                raise MappingError(
                    f"rename_rules[{i}] replacement must be a string or None (got {replacement!r})."
                )
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as e:
                raise MappingError(f"rename_rules[{i}] regex {pattern!r} does not compile: {e}.") from None
            self.rules.append((compiled, replacement))
            self.templates.append(_parse_template(replacement, compiled, i))
        self.used = [False] * len(self.rules)
        self._shifted: dict[int, list] = {}
        self._combined = None
        if len(self.rules) > 1 and not any(_BACKREF.search(c.pattern) for c, _ in self.rules):
            # One alternation tries the rules in order at the start of the name; the
            # wrapping group that matched names the rule, and the rule's own groups
            # follow it. Rules with backreferences, inline flags or clashing group
            # names cannot be combined and are tried one by one.
            try:
                self._combined = re.compile(
                    "|".join(f"(?P<_r{i}>(?:{c.pattern})\\Z)" for i, (c, _) in enumerate(self.rules))
                )
                self._group_rule = {self._combined.groupindex[f"_r{i}"]: i for i in range(len(self.rules))}
            except re.error:
                self._combined = None

    def apply(self, name: str) -> tuple[bool, Optional[str]]:
        """Returns `(matched, source_name)`; `source_name` None means skip the variable."""
        if not self.rules:
            return False, None
        if self._combined is not None:
            m = self._combined.match(name)
            if m is None:
                return False, None
            group = m.lastindex
            i = self._group_rule.get(group)
            if i is None:
                i = self._which(m)
                group = self._combined.groupindex[f"_r{i}"]
            self.used[i] = True
            return True, self._expand(i, m, group)
        for i, (compiled, _) in enumerate(self.rules):
            m = compiled.fullmatch(name)
            if m is not None:
                self.used[i] = True
                return True, self._expand(i, m, 0)
        return False, None

    def _expand(self, i: int, m: re.Match, offset: int) -> Optional[str]:
        template = self.templates[i]
        if template is None or type(template) is str:
            return template
        fmt, refs = template
        if offset:
            # Numbered groups of rule i are shifted by `offset` inside the combined pattern.
            refs = self._shifted.get(i)
            if refs is None:
                refs = self._shifted[i] = [r + offset if type(r) is int else r for r in template[1]]
        if len(refs) == 1:
            return fmt.format(m.group(refs[0]) or "")
        return fmt.format(*[v or "" for v in m.group(*refs)])

    def _which(self, m: re.Match) -> int:
        for i in range(len(self.rules)):
            if m.group(f"_r{i}") is not None:
                return i
        raise AssertionError("a combined match names no rule")

    def unused(self) -> list[str]:
        return [
            f"rename_rules[{i}] ({c.pattern!r}, {r!r})"
            for i, ((c, r), u) in enumerate(zip(self.rules, self.used))
            if not u
        ]


class _AssignmentMap:
    """`init_from_checkpoint`'s `{source: target}` grammar, as dict lookups."""

    def __init__(
        self,
        assignment_map: Optional[Mapping[str, str]],
        target_names: set,
        prev_names: Optional[Mapping[str, str]] = None,
    ):
        # target -> (source, entry); target scope ('' is the root) -> (source prefix, entry).
        self.exact: dict[str, tuple[str, str]] = {}
        self.scopes: dict[str, tuple[str, str]] = {}
        self.used: dict[str, bool] = {}
        self.active = False
        self._depths: Optional[list[int]] = None
        # TF's `var_name_to_prev_var_name` is `{target: source}`, so one source may feed several targets.
        for target, source in (prev_names or {}).items():
            if not isinstance(source, str) or not isinstance(target, str):
                raise MappingError(
                    f"var_name_to_prev_var_name must map variable names to checkpoint names, both strings "
                    f"(got {target!r}: {source!r})."
                )
            entry = f"var_name_to_prev_var_name {target!r}: {source!r}"
            self.used[entry] = False
            self.active = True
            self.exact[target] = (source, entry)
        for source, target in (assignment_map or {}).items():
            if not isinstance(source, str) or not isinstance(target, str):
                raise MappingError(
                    f"assignment_map entries must map a checkpoint name to a variable name, both strings "
                    f"(got {source!r}: {target!r})."
                )
            entry = f"assignment_map {source!r}: {target!r}"
            self.used[entry] = False
            self.active = True
            if source.endswith("/") and (target.endswith("/") or target == "/"):
                scope = "" if target == "/" else target[:-1]
                prefix = "" if source == "/" else source
                if scope in self.scopes:
                    raise MappingError(
                        f"{entry} and {self.scopes[scope][1]} both map onto scope '{target}': keep one."
                    )
                self.scopes[scope] = (prefix, entry)
            elif source.endswith("/"):
                raise MappingError(
                    f"{entry}: a scope (ending in '/') must map onto a scope: write "
                    f"{{'{source}': '{target}/'}} ('old_scope/': 'new_scope/')."
                )
            elif target.endswith("/") and target not in target_names:
                raise MappingError(
                    f"{entry}: a variable name must map onto a variable name; to map a scope write "
                    f"{{'{source}/': '{target}'}}."
                )
            else:
                if target in self.exact:
                    raise MappingError(
                        f"{entry} and {self.exact[target][1]} both initialise variable '{target}': keep one."
                    )
                self.exact[target] = (source, entry)

    def lookup(self, name: str) -> tuple[Optional[str], Optional[str]]:
        """Returns `(source_name, via)` or `(None, None)` when no entry covers `name`."""
        hit = self.exact.get(name)
        if hit is not None:
            self.used[hit[1]] = True
            return hit[0], "assignment_map"
        if not self.scopes:
            return None, None
        if self._depths is None:
            # Only prefixes with as many '/' as some scope entry can match: find those, deepest first.
            self._depths = sorted({scope.count("/") + 1 for scope in self.scopes if scope}, reverse=True)
        cuts = []
        end = -1
        for _ in range(self._depths[0] if self._depths else 0):
            end = name.find("/", end + 1)
            if end < 0:
                break
            cuts.append(end)
        for depth in self._depths:
            if depth <= len(cuts):
                end = cuts[depth - 1]
                hit = self.scopes.get(name[:end])
                if hit is not None:
                    self.used[hit[1]] = True
                    return hit[0] + name[end + 1 :], "scope"
        hit = self.scopes.get("")
        if hit is not None:
            self.used[hit[1]] = True
            return hit[0] + name, "scope"
        return None, None

    def unused(self) -> list[str]:
        return [entry for entry, used in self.used.items() if not used]


def _parse_template(replacement: Optional[str], compiled: re.Pattern, i: int):
    """Parses a replacement once: None, a constant string, or a list of strings and `(group, numbered)`."""
    if replacement is None or "\\" not in replacement:
        return replacement
    pieces: list = []
    pos = 0
    for token in _TEMPLATE_TOKEN.finditer(replacement):
        if token.group(3) is not None:
            raise MappingError(
                f"rename_rules[{i}] replacement {replacement!r}: only group references (\\1, \\g<1>, "
                f"\\g<name>) may follow a backslash (got '\\{token.group(3)}')."
            )
        ref = token.group(1) if token.group(1) is not None else token.group(2)
        pieces.append(replacement[pos : token.start()])
        if ref.isdigit():
            if int(ref) > compiled.groups:
                raise MappingError(
                    f"rename_rules[{i}] replacement {replacement!r} refers to group {ref}, but "
                    f"{compiled.pattern!r} has {compiled.groups}."
                )
            pieces.append((int(ref), True))
        else:
            if ref not in compiled.groupindex:
                raise MappingError(
                    f"rename_rules[{i}] replacement {replacement!r} refers to group '{ref}', which "
                    f"{compiled.pattern!r} does not define."
                )
            pieces.append((ref, False))
        pos = token.end()
    pieces.append(replacement[pos:])
    # A `str.format` string and its group references: one C-level call per rename.
    fmt = "".join(p.replace("{", "{{").replace("}", "}}") if type(p) is str else "{}" for p in pieces)
    return fmt, [p[0] if p[1] else p[0] for p in pieces if type(p) is not str]


# -- the plan --------------------------------------------------------------------------------


TargetsArg = Union[Iterable[Union[str, Target]], Mapping[str, Any], checkpoint.CheckpointInfo]


def plan_mapping(
    source: Union[str, checkpoint.CheckpointInfo],
    targets: TargetsArg,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
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

    Returns:
      The `WarmStartPlan`; call `raise_for_errors()` to refuse a faulty one.

    Raises:
      MappingError: `assignment_map` or `rename_rules` is malformed.
      CheckpointNotFoundError, CorruptCheckpointError: `source` cannot be read.
    """
    info = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    target_list = _targets(targets)
    amap = _AssignmentMap(assignment_map, {t.name for t in target_list}, var_name_to_prev_var_name)
    rules = _Rules(list(rename_rules or ()))
    index = SourceIndex(info)
    assignments: list[Assignment] = []
    unmapped: list[Unmapped] = []
    skipped: list[str] = []
    used_keys: set = set()
    # The hot loop of a 100,000-variable plan: locals and positional tuples on purpose.
    lookup, apply_rules, resolve = amap.lookup, rules.apply, index.resolve
    add_assignment, add_used = assignments.append, used_keys.update
    for name, shape, dtype in target_list:
        source_name, via = lookup(name) if amap.active else (None, None)
        if source_name is None:
            matched, renamed = apply_rules(name)
            if matched:
                if renamed is None:
                    skipped.append(name)
                    continue
                source_name, via = renamed, "rule"
            else:
                source_name, via = name, "name"
        found, ambiguous = resolve(source_name)
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
        unused_mappings=tuple(amap.unused() + rules.unused()),
        # Only error messages need the closest names: skip the work for a clean plan.
        candidates=index.candidates() if unmapped else (),
    )


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


def targets_from_checkpoint(info: checkpoint.CheckpointInfo) -> list[Target]:
    """The variables of a new model, as its checkpoint records them.

    Names are TF1 keys, or for an object-based checkpoint the recorded
    `full_name` (the object path where that name is ambiguous; parts saved one
    by one become their whole variable). The object graph, slot variables and
    `save_counter` are left out: they are never warm-started.
    """
    index = SourceIndex(info)
    out: list[Target] = []
    if info.format == "tf1":
        return [Target(t.key, tuple(t.shape), t.dtype) for t in index.tensors.values()]
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
            parts = index._parts(named)
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
) -> WarmStartPlan:
    """The dry run of a warm start: plans `target`'s variables against `source`, without TensorFlow.

    Args:
      source: the checkpoint (model dir or prefix) to warm-start from.
      target: a checkpoint or model dir of the new model; names, shapes and
        dtypes come from it (see `targets_from_checkpoint`).
      assignment_map, rename_rules: as for `plan_mapping`.
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
    return plan_mapping(source, targets, assignment_map=assignment_map, rename_rules=rename_rules)


def key_for_name(source: Union[str, checkpoint.CheckpointInfo], name: str) -> tuple[str, ...]:
    """The checkpoint key(s) a variable name, full_name or object path stands for.

    Args:
      source: a `CheckpointInfo`, model directory or prefix.
      name: a TF1 name, a recorded `full_name`, an object path (with or
        without `/.ATTRIBUTES/VARIABLE_VALUE`) or a key.

    Returns:
      One key, or each part's key for a variable saved in parts one by one.

    Raises:
      AmbiguousNameError: `name` is held by several keys (they are listed).
      UnmappedVariablesError: nothing in the checkpoint is called `name`.
    """
    info = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    index = SourceIndex(info)
    found, ambiguous = index.resolve(name)
    if found is not None:
        return found.keys
    if ambiguous:
        raise AmbiguousNameError(
            f"{info.prefix}: '{name}' is held by {', '.join(ambiguous)}; name one of their object paths instead."
        )
    near = difflib.get_close_matches(name, index.candidates(), n=3, cutoff=0.5)
    raise UnmappedVariablesError(
        f"{info.prefix}: nothing in this {info.format} checkpoint is called '{name}'"
        + (f"; closest: {', '.join(near)}." if near else ".")
    )


def name_for_key(source: Union[str, checkpoint.CheckpointInfo], key: str) -> Optional[str]:
    """The TF1 variable name of a checkpoint key: the key itself for tf1, the recorded `full_name` for tf2.

    Returns None for keys without a name (the object graph, non-variable
    attributes). The parts of a variable saved one by one all return the
    whole variable's name (`emb`), as TensorFlow recorded it.

    Raises:
      KeyError: `key` is not in the checkpoint.
    """
    info = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    if key not in info.tensors:
        raise KeyError(f"'{key}' is not a key of checkpoint '{info.prefix}'.")
    return info.tensors[key].name
