"""Value transforms of a mapping rule: a small declared vocabulary, checked against shapes before any byte is read.

A rule may give a target variable its value through transforms of one or
more source tensors, written as data (`docs/transforms.md`): a list of
one-key objects, applied in order:

| op | argument | result |
|---|---|---|
| `concat` | `{"axis": a}` | the sources joined along `a` (first op; needed with several sources) |
| `reshape` | `[dims]` (one may be -1), or `null`: the target's shape | same bytes, row-major; index only |
| `transpose` | `[perm]` | axes permuted |
| `slice` | `{"axis": a, "begin": b, "size": s}` | `b` negative counts from the end, `"end"` takes the last `s`; `s` omitted: the target's size on `a` |
| `split` | `{"axis": a, "parts": n, "index": i}` | part `i` of `n` equal parts along `a` |
| `reorder` | `{"axis": a, "parts": n, "order": [..]}` | block `i` of the result is block `order[i]` of the input (gate order) |
| `add`, `scale` | a number, or `{"value": v, "axis": a, "parts": n, "index": i}` | `+ v` / `* v`, on all of it or on one block |
| `cast` | a dtype name (`"float16"`) | converted values |

A number may be a parameter's name (`"forget_bias"`, or `"-forget_bias"`
for its negation), filled in from the rules' `params`. `bind` checks a list
of ops against the sources' shapes and dtypes and the target's, and gives a
`Transform` whose every argument is concrete: what `map` shows and what the
conversion (`tools.compute`) and the warm start execute. Nothing here reads
a tensor or imports numpy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

from est_ckpt.errors import TransformError

OPS = ("concat", "reshape", "transpose", "slice", "split", "reorder", "add", "scale", "cast")
# Ops that move or retype elements; `add`/`scale` change values, so optimizer slots never follow them.
_VALUE_OPS = ("add", "scale")
_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")

Shape = tuple


@dataclasses.dataclass(frozen=True)
class Step:
    """One op with concrete arguments, and the shape it gives.

    Attributes:
      op: one of `OPS`.
      args: the op's concrete arguments (as `as_json` writes them).
      shape: the shape after this step.
      dtype: the dtype after this step.
    """

    op: str
    args: Any
    shape: Shape
    dtype: str

    def as_json(self) -> dict:
        return {self.op: self.args}

    def describe(self) -> str:
        a = self.args
        if self.op in ("reshape", "transpose"):
            return f"{self.op} {list(a)}"
        if self.op == "cast":
            return f"cast {a}"
        if self.op == "concat":
            return f"concat axis {a['axis']}"
        if self.op == "slice":
            return f"slice axis {a['axis']} [{a['begin']}:{a['begin'] + a['size']}]"
        if self.op == "reorder":
            return f"reorder axis {a['axis']} blocks {a['order']}"
        where = "" if a.get("parts") is None else f" on block {a['index']} of {a['parts']} (axis {a['axis']})"
        return f"{self.op} {a['value']:g}{where}"


@dataclasses.dataclass(frozen=True)
class Transform:
    """How a target's value is computed from its sources: bound `Step`s.

    Attributes:
      sources: the source names, in order.
      source_shapes, source_dtypes: what each source holds.
      steps: the ops, concrete.
      keys: each source's checkpoint key(s) (several: parts saved one by one), once planned.
      part_axes: the axis each source's parts join on.
    """

    sources: tuple[str, ...]
    source_shapes: tuple[Shape, ...]
    source_dtypes: tuple[str, ...]
    steps: tuple[Step, ...]
    keys: tuple[tuple[str, ...], ...] = ()
    part_axes: tuple[int, ...] = ()

    @property
    def shape(self) -> Shape:
        return self.steps[-1].shape if self.steps else self.source_shapes[0]

    @property
    def dtype(self) -> str:
        return self.steps[-1].dtype if self.steps else self.source_dtypes[0]

    @property
    def index_only(self) -> bool:
        """Whether the value is the one source's bytes under another shape (no byte is read or written)."""
        return (
            len(self.sources) == 1
            and all(s.op == "reshape" for s in self.steps)
            and (not self.keys or len(self.keys[0]) == 1)
        )

    def describe(self) -> list[str]:
        return [s.describe() for s in self.steps]

    def as_json(self) -> list[dict]:
        return [s.as_json() for s in self.steps]

    def for_slots(self, sources: Sequence[str], target: str) -> Transform:
        """The same moves for an optimizer slot of each source: the steps without `add`.

        Raises:
          TransformError: a `scale` changes the values (the slot's state would not mean the same).
        """
        scaled = [s for s in self.steps if s.op == "scale"]
        if scaled:
            raise TransformError(
                f"'{target}': its variable's value is scaled ({scaled[0].describe()}), so its optimizer "
                "state would not mean the same. Leave the optimizer state out (keep_unmapped)."
            )
        return dataclasses.replace(
            self,
            sources=tuple(sources),
            steps=tuple(s for s in self.steps if s.op not in _VALUE_OPS),
            keys=(),
        )


def check_ops(ops: Any, where: str) -> tuple[dict, ...]:
    """Checks the form of a list of ops (from a rules file) without shapes; returns it as a tuple.

    Raises:
      TransformError: not a list of one-key objects naming known ops.
    """
    if not isinstance(ops, (list, tuple)):
        raise TransformError(f"{where}: 'transforms' must be a list of ops (got {ops!r:.80}).")
    for i, op in enumerate(ops):
        if not (isinstance(op, Mapping) and len(op) == 1 and next(iter(op)) in OPS):
            raise TransformError(
                f"{where}: transforms[{i}] must be one of {{{', '.join(repr(o) for o in OPS)}: ...}} "
                f"(got {op!r:.80})."
            )
        if next(iter(op)) == "concat" and i:
            raise TransformError(f"{where}: transforms[{i}]: 'concat' joins the sources, so it comes first.")
    return tuple(dict(op) for op in ops)


class _Binder:
    def __init__(self, where: str, target_shape: Optional[Shape], params: Mapping[str, float]):
        self.where, self.target_shape, self.params = where, target_shape, params

    def fail(self, i: int, what: str) -> TransformError:
        return TransformError(f"{self.where}: transforms[{i}]: {what}.")

    def number(self, i: int, value: Any) -> float:
        if isinstance(value, str):
            name = value.lstrip("-")
            if name not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise self.fail(i, f"parameter '{name}' is not set (parameters: {known})")
            return -float(self.params[name]) if value.startswith("-") else float(self.params[name])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(i, f"expected a number or a parameter's name (got {value!r})")
        return float(value)

    def integer(self, i: int, args: Mapping, name: str, default: Any = None) -> int:
        value = args.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(i, f"'{name}' must be an integer (got {value!r})")
        return value

    def axis(self, i: int, args: Any, shape: Shape) -> int:
        if not isinstance(args, Mapping):
            raise self.fail(i, f"expected an object with 'axis' (got {args!r:.80})")
        axis = self.integer(i, args, "axis", 0)
        if not -len(shape) <= axis < len(shape):
            raise self.fail(i, f"axis {axis} is outside a tensor of shape {list(shape)}")
        return axis % len(shape)

    def target_dim(self, i: int, axis: int, what: str) -> int:
        if self.target_shape is None or axis >= len(self.target_shape):
            raise self.fail(i, f"{what} is taken from the target's shape, which is not known here: give it")
        return self.target_shape[axis]

    def blocks(self, i: int, args: Mapping, shape: Shape, axis: int) -> int:
        parts = self.integer(i, args, "parts")
        if parts <= 0 or shape[axis] % parts:
            raise self.fail(
                i, f"{shape[axis]} (axis {axis} of {list(shape)}) does not split into {parts} parts"
            )
        return parts

    def step(self, i: int, op: str, args: Any, shape: Shape, dtype: str) -> Step:
        if op == "reshape":
            if args is None:
                if self.target_shape is None:
                    raise self.fail(i, "reshape without a shape takes the target's, which is not known here")
                args = list(self.target_shape)
            if not (
                isinstance(args, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in args)
            ):
                raise self.fail(i, f"reshape takes a list of integers (got {args!r:.80})")
            new = list(args)
            if new.count(-1) > 1 or any(d < -1 for d in new):
                raise self.fail(i, f"reshape {new}: at most one -1 and no other negative size")
            size, known = math.prod(shape), math.prod(d for d in new if d != -1)
            if -1 in new:
                if known == 0 or size % known:
                    raise self.fail(i, f"cannot reshape {list(shape)} ({size} elements) to {new}")
                new[new.index(-1)] = size // known
            if math.prod(new) != size:
                raise self.fail(i, f"cannot reshape {list(shape)} ({size} elements) to {new}")
            return Step(op, new, tuple(new), dtype)
        if op == "transpose":
            if not (isinstance(args, list) and sorted(args) == list(range(len(shape)))):
                raise self.fail(i, f"transpose {args!r}: give a permutation of 0..{len(shape) - 1}")
            return Step(op, list(args), tuple(shape[p] for p in args), dtype)
        if op == "cast":
            if args not in _DTYPES:
                raise self.fail(i, f"cast to {args!r}: one of {', '.join(_DTYPES)}")
            return Step(op, args, shape, args)
        if op in ("slice", "split"):
            axis = self.axis(i, args, shape)
            if op == "split":
                parts = self.blocks(i, args, shape, axis)
                index = self.integer(i, args, "index")
                if not 0 <= index < parts:
                    raise self.fail(i, f"index {index} of {parts} parts")
                size = shape[axis] // parts
                begin = index * size
            else:
                size = args.get("size")
                size = (
                    self.target_dim(i, axis, "the slice's size")
                    if size is None
                    else self.integer(i, args, "size")
                )
                begin = args.get("begin", 0)
                if begin == "end":
                    begin = shape[axis] - size
                elif isinstance(begin, bool) or not isinstance(begin, int):
                    raise self.fail(i, f"'begin' must be an integer or \"end\" (got {begin!r})")
                elif begin < 0:
                    begin += shape[axis]
            if size < 0 or begin < 0 or begin + size > shape[axis]:
                raise self.fail(i, f"{op} [{begin}:{begin + size}] of axis {axis} is outside {list(shape)}")
            new = list(shape)
            new[axis] = size
            return Step("slice", {"axis": axis, "begin": begin, "size": size}, tuple(new), dtype)
        if op == "reorder":
            axis = self.axis(i, args, shape)
            parts = self.blocks(i, args, shape, axis)
            order = args.get("order")
            if not (isinstance(order, list) and sorted(order) == list(range(parts))):
                raise self.fail(i, f"reorder 'order' must be a permutation of 0..{parts - 1} (got {order!r})")
            return Step(op, {"axis": axis, "parts": parts, "order": list(order)}, shape, dtype)
        if op in _VALUE_OPS:
            if dtype not in ("float16", "bfloat16", "float32", "float64"):
                raise self.fail(i, f"{op} needs floating-point values (this is {dtype})")
            if not isinstance(args, Mapping):
                return Step(op, {"value": self.number(i, args)}, shape, dtype)
            value = self.number(i, args.get("value"))
            if "parts" not in args:
                return Step(op, {"value": value}, shape, dtype)
            axis = self.axis(i, args, shape)
            parts = self.blocks(i, args, shape, axis)
            index = self.integer(i, args, "index")
            if not 0 <= index < parts:
                raise self.fail(i, f"index {index} of {parts} parts")
            return Step(op, {"value": value, "axis": axis, "parts": parts, "index": index}, shape, dtype)
        raise self.fail(i, f"'{op}' is not an op here")


def bind(
    ops: Sequence[Mapping],
    sources: Sequence[str],
    shapes: Sequence[Shape],
    dtypes: Sequence[str],
    *,
    target: str,
    target_shape: Optional[Shape] = None,
    params: Optional[Mapping[str, float]] = None,
) -> Transform:
    """Checks `ops` (validated by `check_ops`) against the sources and the target; returns the `Transform`.

    Raises:
      TransformError: an op does not fit the shapes, a parameter is unset, or
        the result is not the target's shape; the message names the pair and
        what would fit.
    """
    where = f"'{target}' <- {', '.join(repr(s) for s in sources)}"
    binder = _Binder(where, None if target_shape is None else tuple(target_shape), params or {})
    shape, dtype = tuple(shapes[0]), dtypes[0]
    steps: list[Step] = []
    todo = list(ops)
    if len(sources) > 1:
        if not todo or next(iter(todo[0])) != "concat":
            raise TransformError(
                f"{where}: several sources are joined by a first op {{'concat': {{'axis': a}}}}."
            )
        args = todo.pop(0)["concat"]
        axis = binder.axis(0, args, shape)
        if len(set(dtypes)) != 1:
            raise TransformError(
                f"{where}: concat of different dtypes ({', '.join(dtypes)}); cast them apart."
            )
        for s, other in zip(sources, shapes):
            if len(other) != len(shape) or any(
                a != b for k, (a, b) in enumerate(zip(other, shape)) if k != axis
            ):
                raise TransformError(
                    f"{where}: concat on axis {axis} needs the other axes equal: {list(shapes[0])} and "
                    f"{list(other)} ('{s}')."
                )
        new = list(shape)
        new[axis] = sum(s[axis] for s in shapes)
        shape = tuple(new)
        steps.append(Step("concat", {"axis": axis}, shape, dtype))
    elif todo and next(iter(todo[0])) == "concat":
        todo.pop(0)  # one source: nothing to join
    for i, op in enumerate(todo, start=len(ops) - len(todo)):
        ((name, args),) = op.items()
        if not shape and name not in ("reshape", "cast", "add", "scale"):
            raise binder.fail(i, f"{name} of a scalar")
        step = binder.step(i, name, args, shape, dtype)
        steps.append(step)
        shape, dtype = step.shape, step.dtype
    if target_shape is not None and tuple(target_shape) != shape:
        raise TransformError(
            f"{where}: the transforms give {list(shape)}, the target is {list(target_shape)}; "
            + _what_fits(shape, tuple(target_shape))
        )
    return Transform(tuple(sources), tuple(tuple(s) for s in shapes), tuple(dtypes), tuple(steps))


def _what_fits(shape: Shape, target: Shape) -> str:
    if math.prod(shape) == math.prod(target):
        return f'add {{"reshape": {list(target)}}} (same {math.prod(shape)} elements, row-major).'
    if sorted(shape) == sorted(target):
        perm, free = [], list(range(len(shape)))
        for d in target:
            k = next(k for k in free if shape[k] == d)
            free.remove(k)
            perm.append(k)
        return f'add {{"transpose": {perm}}}.'
    return (
        f"they hold {math.prod(shape)} and {math.prod(target)} elements: slice, split or concat "
        "to reach the target's."
    )


__all__ = ["OPS", "Step", "Transform", "bind", "check_ops"]
