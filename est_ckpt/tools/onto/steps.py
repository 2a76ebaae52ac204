"""The step count of a conversion onto a template: checked against Adam's powers, and those powers derived.

TF1 `AdamOptimizer` keeps `beta1_power`, `beta2_power` = `beta ** (t + 1)`
after `t` of its own steps; Keras optimizers derive them from `iteration`.
So `global_step` carried over as `iteration` is right only if the
optimizer took exactly `global_step` steps (not when `global_step` was reset,
or is incremented by another op). `check_step` reads those few scalars and
refuses a mismatch naming the keys and both values (`MismatchError`); the
way back, `power_tensors` writes `beta ** (step + 1)` for a TF1 template's
powers that the source lacks. `beta_1`/`beta_2` are the template's: its
recorded hyperparameters (legacy Keras `optimizer/beta_1`, graph-mode
`training/Adam/beta_1`), or for a TF1 template its own powers and step.
Only scalars are read: the cost stays independent of the tensor bytes.
"""

from __future__ import annotations

import math
import struct
from typing import Mapping, Optional

from est_ckpt.errors import ConversionError, MismatchError
from est_ckpt.format import checkpoint, dtypes, tensors
from est_ckpt.mapping.optimizer_slots import step_key
from est_ckpt.mapping.optimizer_state import POWERS, hyperparameter_name

_HYPER = {"beta1_power": "beta_1", "beta2_power": "beta_2"}
# float32 rounding per multiplication of `beta_power *= beta`.
_EPS32 = 2.0**-24


def _scalar(info: checkpoint.CheckpointInfo, key: str) -> float:
    value = tensors.read_tensor(info.bundle, key)
    if value.shape != ():
        raise ConversionError(f"{info.prefix}: '{key}' is not a scalar (shape {tuple(value.shape)}).")
    return value.item()


def _last(t: checkpoint.TensorInfo) -> str:
    """The last component of a tensor's name (its recorded `full_name` in an object-based checkpoint)."""
    return (t.name or t.key).rpartition("/")[2]


def power_keys(info: checkpoint.CheckpointInfo, power: Optional[str] = None) -> list[str]:
    """The keys of TF1 Adam's scalar powers (`beta1_power`, `dnn/head/beta2_power`) in `info`."""
    wanted = (power,) if power else POWERS
    return [k for k, t in info.tensors.items() if t.shape == () and t.slot is None and _last(t) in wanted]


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def template_beta(template: checkpoint.CheckpointInfo, power: str) -> Optional[tuple[float, str]]:
    """`(beta, where it comes from)` for `power` ('beta1_power'|'beta2_power') in `template`, or None if unknown."""
    hyper = _HYPER[power]
    found: dict[float, str] = {}
    for key, t in template.tensors.items():
        if t.dtype == "float32" and hyperparameter_name(t) == hyper:
            found.setdefault(_scalar(template, key), key)
    if len(found) == 1:
        ((value, key),) = found.items()
        return value, f"'{key}' of {template.prefix}"
    if found:
        return None
    step = step_key(template)
    powers = power_keys(template, power)
    if step is None or len(powers) != 1:
        return None
    t_step, t_power = int(_scalar(template, step)), _scalar(template, powers[0])
    if not 0 < t_power < 1:
        return None
    beta = _f32(t_power ** (1.0 / (t_step + 1)))
    return beta, f"'{powers[0]}' ** (1 / ('{step}' + 1)) of {template.prefix}"


def _expected(beta: float, step: int) -> float:
    return beta ** (step + 1)


def check_step(
    src: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo, sources: Mapping[str, str]
) -> tuple[str, ...]:
    """Checks SRC's step count against its Adam powers where the step is carried over; returns notes.

    Args:
      sources: `{template key: src key}` of the conversion.

    Returns:
      What was checked, or why it could not be (one line each).

    Raises:
      MismatchError: a power is not `beta ** (step + 1)`.
    """
    s_step, t_step = step_key(src), step_key(template)
    if s_step is None or t_step is None or sources.get(t_step) != s_step:
        return ()
    powers = power_keys(src)
    if not powers:
        return ()
    step = int(_scalar(src, s_step))
    notes = []
    for key in powers:
        power = _last(src.tensors[key])
        beta = template_beta(template, power)
        value = _scalar(src, key)
        if beta is None:
            notes.append(
                f"'{s_step}' = {step} not checked against '{key}' = {value:.9g}: {template.prefix} does not "
                f"record {_HYPER[power]} (a TF 2.11+ Keras optimizer keeps it out of its checkpoint)"
            )
            continue
        b, where = beta
        expected = _expected(b, step)
        tolerance = (1e-6 + 2 * (step + 2) * _EPS32) * expected + 1e-37
        if abs(value - expected) > tolerance:
            implied = math.log(value) / math.log(b) - 1 if 0 < value < 1 and 0 < b < 1 else float("nan")
            raise MismatchError(
                f"{src.prefix}: '{s_step}' = {step} does not count the optimizer's steps: '{key}' = {value:.9g}, "
                f"but {_HYPER[power]} = {b:.9g} (from {where}) gives {_HYPER[power]} ** ('{s_step}' + 1) = "
                f"{expected:.9g} (the power says {implied:.6g} steps). Was '{s_step}' reset, or not "
                "incremented by this optimizer? Fix it in SRC or convert without the optimizer state."
            )
        notes.append(
            f"'{s_step}' = {step} agrees with '{key}' = {value:.9g} ({_HYPER[power]} = {b:.9g} from {where})"
        )
    return tuple(notes)


def power_tensors(
    src: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    sources: Mapping[str, str],
    powers: Mapping[str, str],
) -> dict[str, float]:
    """`{template key: value}`: TF1 Adam powers SRC lacks, as `beta ** (step + 1)` of SRC's step count.

    Args:
      sources: `{template key: src key}` of the conversion (the step must be in it).
      powers: `{template key: 'beta1_power'|'beta2_power'}` (`optimizer_state.power_targets`).

    Raises:
      ConversionError: no step count to derive them from, or no beta known.
    """
    if not powers:
        return {}
    t_step = step_key(template)
    s_step = sources.get(t_step) if t_step is not None else None
    if s_step is None:
        raise ConversionError(
            f"{template.prefix}: {', '.join(repr(k) for k in powers)} derive from the step count, and "
            f"{src.prefix} has none mapped onto '{t_step or 'global_step'}'. Map it with assignment_map."
        )
    step = int(_scalar(src, s_step))
    out = {}
    for key, power in powers.items():
        if template.tensors[key].dtype != "float32" or template.tensors[key].shape != ():
            raise ConversionError(f"{template.prefix}: '{key}' is not a float32 scalar.")
        beta = template_beta(template, power)
        if beta is None:
            raise ConversionError(
                f"{template.prefix}: '{key}' = {_HYPER[power]} ** (step + 1), and {_HYPER[power]} is not "
                "known from the template. Map it with assignment_map or keep it with keep_unmapped."
            )
        out[key] = _f32(_expected(beta[0], step))
    return out


def new_tensors(
    scalars: Mapping[str, float], raw: Mapping[str, tuple[int, tuple, bytes]]
) -> dict[str, tuple[int, tuple, bytes]]:
    """`{key: (dtype, shape, bytes)}` of float32 `scalars` and `raw` tensors: the computed tensors of a conversion."""
    values = {k: (dtypes.DT_FLOAT, (), struct.pack("<f", v)) for k, v in scalars.items()}
    return {**values, **raw}


__all__ = ["check_step", "new_tensors", "power_tensors", "template_beta"]
