"""Names ⇄ keys: which checkpoint key(s) hold a TF1 variable name, and which TF1 name a key has.

The one resolver of est_ckpt: the warm-start planner, `convert`, `diff` and
the scaffolds' restore by name all ask `NameIndex`. Its rules are
TensorFlow's:

* A name-based (tf1) checkpoint keys every variable by its TF1 name; a
  partitioned variable is one sliced entry under its name, which every reader
  returns whole.
* An object-based (tf2) checkpoint records each variable's TF1 name as the
  `full_name` of its attribute in the object graph. A name one key records is
  that key.
* Parts saved one by one: TensorFlow names part `i` of a partitioned variable
  `v` `v/part_<i>` (a slot `s` of it `v/part_<i>/s`, recorded as `v/s`) and
  records the whole variable's name for every part. Keys sharing one name form
  that variable when the last edge of each one's object path has a
  `part_<i>` component, numbered 0..k-1, none is a slot or a slice, and
  their shapes differ along at most one axis (TF partitions along one axis
  only): they are concatenated along that axis. Parts of equal shape are
  concatenated along axis 0, the default axis of every TF partitioner, unless
  an expected whole shape says which axis it was.
* Any other name several keys record is ambiguous: the keys are listed and the
  caller refuses it (TF's own `object_graph_key_mapping` silently keeps one).

`NameIndex.by_tf1_name` answers by TF1 name only, as TF's name-based restore
of an object-based checkpoint does; `NameIndex.resolve` also accepts a key or
an object path (`vars/0`, with or without `/.ATTRIBUTES/VARIABLE_VALUE`), as
`assignment_map` sources may be. Every lookup is a dict lookup.
"""

from __future__ import annotations

import difflib
import re
from typing import NamedTuple, Optional, Sequence, Union

from est_ckpt.errors import AmbiguousNameError, UnmappedVariablesError
from est_ckpt.format import checkpoint, keys

# A component `part_<i>` of a part's own name (`emb/part_3`, `emb/part_3/Adam`).
_PART = re.compile(r"part_(\d+)")


class Source(NamedTuple):
    """The key(s) holding one variable.

    Attributes:
      keys: the key, or each part's key in part order.
      shape: the whole variable's shape.
      dtype: TF's dtype name.
      axis: the axis the parts are concatenated on.
    """

    keys: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    axis: int = 0


def part_number(own_name: str) -> Optional[int]:
    """The `i` of a part's own name: its last `part_<i>` component (`emb/part_3/Adam` -> 3), else None."""
    if "part_" not in own_name:
        return None
    for component in reversed(own_name.split("/")):
        m = _PART.fullmatch(component)
        if m is not None:
            return int(m.group(1))
    return None


def _own_part_number(t: checkpoint.TensorInfo) -> Optional[int]:
    """The part number in the last edge of a tensor's object path, for a part saved one by one; else None."""
    if not t.object_path or t.slot is not None or t.slices:
        return None
    try:
        return part_number(keys.split_path(t.object_path)[-1])
    except keys.KeyGrammarError:
        return None


class NameIndex:
    """The names, object paths and keys of one checkpoint, as dict lookups to its keys.

    Attributes:
      info: the checkpoint.
      tensors: every tensor but the object graph, by key.
      tf1: whether the checkpoint is name-based (its keys are its names).
      by_name: for tf2, every recorded name and the keys recording it.
      by_path: for tf2, every variable's object path and its key.
    """

    def __init__(self, info: checkpoint.CheckpointInfo):
        self.info = info
        self.tensors = {k: t for k, t in info.tensors.items() if k != keys.OBJECT_GRAPH_KEY}
        self.by_path: dict[str, str] = {}
        self.by_name: dict[str, list[str]] = {}
        self.tf1 = info.format == "tf1"
        if not self.tf1:
            for key, t in self.tensors.items():
                if keys.is_variable_key(key):
                    self.by_path[keys.strip_value_suffix(key)] = key
                if t.name:
                    self.by_name.setdefault(t.name, []).append(key)

    def candidates(self) -> tuple[str, ...]:
        """Every name and object path a lookup may use, sorted (for closest-name hints)."""
        names = set(self.tensors) if self.tf1 else set(self.by_name) | set(self.by_path)
        if self.info.format == "keras":  # a dataset whose name is not known goes by its key
            names |= {k for k, t in self.tensors.items() if t.name is None}
        return tuple(sorted(names))

    def named(self, name: str) -> list[str]:
        """Every key whose TF1 name is `name`: the key itself (tf1) or the keys recording it (tf2)."""
        if self.tf1:
            return [name] if name in self.tensors else []
        return self.by_name.get(name, [])

    def by_tf1_name(
        self, name: str, *, shape: Optional[Sequence[int]] = None
    ) -> tuple[Optional[Source], tuple[str, ...]]:
        """The variable whose TF1 name is `name`, as TF's restore by name finds it.

        Args:
          name: a TF1 variable name.
          shape: the whole shape expected, which tells the axis of parts of equal shape.

        Returns:
          `(source, ())`, `(None, ambiguous_keys)`, or `(None, ())` when no key has that name.
        """
        if self.tf1:
            t = self.tensors.get(name)
            return (None if t is None else Source((name,), t.shape, t.dtype)), ()
        named = self.by_name.get(name)
        if named is None:
            return None, ()
        if len(named) == 1:
            t = self.tensors[named[0]]
            return Source((t.key,), t.shape, t.dtype), ()
        parts = self.parts(named, shape=shape)
        return (parts, ()) if parts is not None else (None, tuple(sorted(named)))

    def resolve(
        self, name: str, *, shape: Optional[Sequence[int]] = None
    ) -> tuple[Optional[Source], tuple[str, ...]]:
        """The variable a name, key or object path stands for.

        A name may be a key, an object path and a recorded name at once: it
        resolves only if all of those agree on one key (or form one variable
        saved in parts, when it is nothing else).

        Returns:
          `(source, ())`, `(None, ambiguous_keys)`, or `(None, ())` when missing.
        """
        if self.tf1:
            return self.by_tf1_name(name)
        hits: list[str] = []
        if name in self.tensors:
            hits.append(name)
        by_path = self.by_path.get(name)
        if by_path is not None and by_path not in hits:
            hits.append(by_path)
        named = self.by_name.get(name)
        if named is not None:
            if len(named) > 1:
                parts = None if hits else self.parts(named, shape=shape)
                if parts is not None:
                    return parts, ()
                return None, tuple(sorted(set(named) | set(hits)))
            if named[0] not in hits:
                hits.append(named[0])
        if len(hits) != 1:
            return None, tuple(sorted(hits))
        t = self.tensors[hits[0]]
        return Source((t.key,), t.shape, t.dtype), ()

    def part_of(self, key: str) -> Optional[int]:
        """The part number of `key` if it may be a part saved one by one, else None."""
        return _own_part_number(self.tensors[key])

    def parts(self, ks: Sequence[str], *, shape: Optional[Sequence[int]] = None) -> Optional[Source]:
        """The variable that keys sharing one name form as parts saved one by one, in order; else None.

        Args:
          ks: the keys recording one name.
          shape: the whole shape expected; chooses the axis of parts of equal shape.
        """
        numbered: dict[int, checkpoint.TensorInfo] = {}
        for k in ks:
            i = _own_part_number(self.tensors[k])
            if i is None or i in numbered:
                return None
            numbered[i] = self.tensors[k]
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
        if not differ and shape is not None:
            for d in range(len(shapes[0])):
                if tuple(shape) == shapes[0][:d] + (shapes[0][d] * len(shapes),) + shapes[0][d + 1 :]:
                    axis = d
                    break
        full = list(shapes[0])
        full[axis] = sum(s[axis] for s in shapes)
        return Source(tuple(t.key for t in ordered), tuple(full), ordered[0].dtype, axis)


def _info(source: Union[str, checkpoint.CheckpointInfo]) -> checkpoint.CheckpointInfo:
    return source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)


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
    info = _info(source)
    index = NameIndex(info)
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
    whole variable's name (`emb`), as TensorFlow recorded it. (How `convert`
    names a whole checkpoint, global step and optimizer slots included, is
    `tf1_names.tf1_variables`.)

    Raises:
      KeyError: `key` is not in the checkpoint.
    """
    info = _info(source)
    if key not in info.tensors:
        raise KeyError(f"'{key}' is not a key of checkpoint '{info.prefix}'.")
    return info.tensors[key].name
