"""Layer layouts that differ between frameworks, recognised by `suggest` from shapes: TF1's LSTM cell onto Keras's.

A TF1 `LSTMCell`/`BasicLSTMCell` keeps one kernel `[input + units, 4 * units]`
(gates i, j, f, o) and a bias `[4 * units]`; Keras `LSTM` keeps `kernel
[input, 4 * units]`, `recurrent_kernel [units, 4 * units]` and `bias` (gates i, f,
c, o, and TF1's `forget_bias` added at run time moved into the bias). A target
layer of that shape whose one source layer of the TF1 shape is found gets the
`lstm` preset's transforms; `forget_bias` is the preset's parameter (1.0, TF1's
default), which the written rules file carries for the user to check.
"""

from __future__ import annotations

import json
import os

from est_ckpt.mapping.evidence import Var

_PRESET = os.path.join(os.path.dirname(__file__), "presets", "lstm.json")
FORGET_BIAS = 1.0


def _preset_transforms() -> dict[str, list]:
    with open(_PRESET, encoding="utf-8") as f:
        rules = json.load(f)["rules"]
    return {
        r["target"].rpartition("/")[2]: r["transforms"] for r in rules if r["target"].startswith("${keras}")
    }


def lstm_pairs(targets: list[Var], sources: list[Var]) -> list[tuple[Var, Var, list]]:
    """`(target, source, transforms)` of each Keras LSTM layer in TARGETS whose TF1 LSTM cell in SOURCES is the
    only one its shapes fit (a cell two layers could take is left to the user)."""

    def layers(vs, kinds):
        out: dict[str, dict[str, Var]] = {}
        for v in vs:
            if v.kind in kinds:
                out.setdefault(v.layer, {})[v.kind] = v
        return out

    keras = {
        layer: vs
        for layer, vs in layers(targets, ("kernel", "recurrent_kernel", "bias")).items()
        if len(vs) == 3
        and len(vs["kernel"].shape) == len(vs["recurrent_kernel"].shape) == 2
        and vs["recurrent_kernel"].shape[1] == 4 * vs["recurrent_kernel"].shape[0]
        and vs["kernel"].shape[1] == vs["recurrent_kernel"].shape[1]
        and vs["bias"].shape == (vs["kernel"].shape[1],)
    }
    cells = {
        layer: vs
        for layer, vs in layers(sources, ("kernel", "bias")).items()
        if len(vs) == 2 and not vs["kernel"].recurrent and len(vs["kernel"].shape) == 2
    }
    fits: dict[str, list[str]] = {}
    for layer, vs in keras.items():
        (a, four_u), u = vs["kernel"].shape, vs["recurrent_kernel"].shape[0]
        for cell, ws in cells.items():
            if (
                ws["kernel"].shape == (a + u, four_u)
                and ws["bias"].shape == (four_u,)
                and ws["kernel"].dtype == vs["kernel"].dtype
            ):
                fits.setdefault(layer, []).append(cell)
    taken = [c for found in fits.values() for c in found]
    transforms = _preset_transforms()
    out = []
    for layer, found in fits.items():
        if len(found) == 1 and taken.count(found[0]) == 1:
            vs, ws = keras[layer], cells[found[0]]
            out += [
                (vs[k], ws["bias" if k == "bias" else "kernel"], transforms[k])
                for k in ("kernel", "recurrent_kernel", "bias")
            ]
    return out


__all__ = ["FORGET_BIAS", "lstm_pairs"]
