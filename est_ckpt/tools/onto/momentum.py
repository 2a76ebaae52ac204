"""TF1 `MomentumOptimizer` accumulators onto Keras SGD velocities and back, computed from the learning rate.

TF1 keeps `accum = momentum * accum + g` and applies `var -= lr * accum`;
Keras SGD (TF 2.11+ and legacy) keeps `v = momentum * v - lr * g` and applies
`var += v`. With the same `lr` and `momentum`, `v = -lr * accum` holds after
every step, so one more step on either side gives the same weights; with
Nesterov on both sides too (TF1 `var -= lr * (g + momentum * accum)`, Keras
`var += momentum * v - lr * g`). `learning_rate` is the one the Keras side
records: TEMPLATE's (`optimizer/_learning_rate`, legacy
`optimizer/learning_rate`), else SRC's; a TF1 graph records none. Neither
side records `momentum` on TF1's side nor `nesterov`/`use_nesterov` anywhere:
`plan_momentum` says so in its notes. Only the slot tensors are read.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

from est_ckpt.errors import ConversionError, MismatchError
from est_ckpt.format import checkpoint, tensors
from est_ckpt.mapping.optimizer_state import hyperparameter_name
from est_ckpt.mapping.transforms import Transform, bind

_FLOATS = ("float16", "float32", "float64")


@dataclasses.dataclass(frozen=True)
class Scaled:
    """A template slot computed from a source slot: `-learning_rate * source` (to Keras) or `-source / learning_rate`."""

    key: str
    source_key: str
    learning_rate: float  # a numpy scalar of the dtype it was saved in
    to_keras: bool

    def describe(self) -> str:
        """The `computed` entry of the JSON plan: how the value is made, not the value."""
        lr = str(self.learning_rate)
        return f"-{lr} * '{self.source_key}'" if self.to_keras else f"-'{self.source_key}' / {lr}"


def _hyper(info: checkpoint.CheckpointInfo, names: tuple[str, ...]) -> dict[float, str]:
    """`{value: key}` of `info`'s float scalar hyperparameters named one of `names`.

    The values stay numpy scalars of their dtype: printed, they read as saved (`0.1`, not `0.100000001`).
    """
    found: dict[float, str] = {}
    for key, t in info.tensors.items():
        if t.dtype in _FLOATS and hyperparameter_name(t) in names:
            found.setdefault(tensors.read_tensor(info.bundle, key)[()], key)
    return found


def learning_rate(
    src: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo, slot: str
) -> tuple[float, checkpoint.CheckpointInfo, str]:
    """`(learning rate, the checkpoint recording it, its key)`: TEMPLATE's, else SRC's.

    Raises:
      ConversionError: neither records one (a schedule, or a TF1 graph on both sides), or one records several,
        or a legacy Keras `decay` makes it change with the step.
    """
    for info in (template, src):
        found = _hyper(info, ("learning_rate", "lr"))
        if len(found) > 1:
            raise ConversionError(
                f"{info.prefix}: '{slot}' is computed from the learning rate, and it records several: "
                + ", ".join(f"'{k}' = {v!s}" for v, k in found.items())
                + ". Use a checkpoint of one Keras SGD optimizer."
            )
        if found:
            ((lr, key),) = found.items()
            decay = {v: k for v, k in _hyper(info, ("decay",)).items() if v != 0}
            if decay:
                ((value, decay_key),) = list(decay.items())[:1]
                raise ConversionError(
                    f"{info.prefix}: '{decay_key}' = {value!s}: the learning rate changes with the step, "
                    f"so '{slot}' cannot be computed from '{key}'. Use an optimizer without decay."
                )
            if lr == 0:
                raise ConversionError(f"{info.prefix}: '{key}' = 0: '{slot}' cannot be computed from it.")
            return lr, info, key
    raise ConversionError(
        f"{template.prefix}: '{slot}' is -learning_rate times TF1 Momentum's accumulator, and neither it nor "
        f"{src.prefix} records the learning rate (a learning-rate schedule, or TF1 graphs on both sides). "
        "Use a Keras SGD with a constant learning rate."
    )


def plan_momentum(
    src: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    pairs: Mapping[str, tuple[str, str, bool]],
) -> tuple[dict[str, Scaled], tuple[str, ...]]:
    """`({template key: Scaled}, notes)` for `optimizer_state.momentum_targets` pairs.

    Raises:
      MismatchError: a pair differs in shape or dtype, or is not floating point.
      ConversionError: no learning rate known (`learning_rate`), or a template slot saved in parts.
    """
    if not pairs:
        return {}, ()
    first = next(iter(pairs.values()))[0]
    lr, where, lr_key = learning_rate(src, template, first)
    out: dict[str, Scaled] = {}
    for t_key, s_key, to_keras in pairs.values():
        t, s = template.tensors[t_key], src.tensors[s_key]
        if t.shape != s.shape or t.dtype != s.dtype or t.dtype not in _FLOATS:
            raise MismatchError(
                f"'{t_key}' of {template.prefix} ({t.dtype}{list(t.shape)}) cannot be computed from '{s_key}' "
                f"of {src.prefix} ({s.dtype}{list(s.shape)}): the same floating-point shape and dtype are needed."
            )
        if template.bundle.entries[t_key].slices:
            raise ConversionError(
                f"{template.prefix}: '{t_key}' is saved in parts; a computed slot is written whole. Use a "
                "template that saves it whole."
            )
        out[t_key] = Scaled(t_key, s_key, lr, to_keras)
    momentum = _hyper(where, ("momentum",))
    recorded = "momentum not recorded"
    if len(momentum) == 1:
        ((value, key),) = momentum.items()
        recorded = f"momentum = {value!s} from '{key}'"
    note = (
        f"{len(out)} Momentum slot(s) computed with learning_rate = {lr!s} ('{lr_key}' of {where.prefix}); "
        "TF1 MomentumOptimizer saves neither its momentum nor use_nesterov, and Keras SGD not nesterov: "
        f"they must equal the Keras SGD's ({recorded}) for the next steps to agree"
    )
    return out, (note,)


def transforms(src: checkpoint.CheckpointInfo, scaled: Mapping[str, Scaled]) -> dict[str, Transform]:
    """`{template key: Transform}`: each slot as one `scale` of its source slot (`-lr`, or `-1 / lr` back).

    The same rule vocabulary as a rules file's (`mapping.transforms`), executed by `tools.compute`.
    """
    out: dict[str, Transform] = {}
    for key, s in scaled.items():
        t = src.tensors[s.source_key]
        factor = -float(s.learning_rate) if s.to_keras else -1.0 / float(s.learning_rate)
        out[key] = bind(
            [{"scale": factor}],
            [s.source_key],
            [tuple(t.shape)],
            [t.dtype],
            target=key,
            target_shape=tuple(t.shape),
        )
        out[key] = dataclasses.replace(out[key], keys=((s.source_key,),), part_axes=(0,))
    return out


def describe(scaled: Optional[Mapping[str, Scaled]]) -> dict[str, str]:
    """`{template key: how it is computed}` (the `computed` entries of the JSON plan)."""
    return {k: s.describe() for k, s in (scaled or {}).items()}


__all__ = ["Scaled", "describe", "learning_rate", "plan_momentum", "transforms"]
