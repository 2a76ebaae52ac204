"""Layer layouts that differ between frameworks, recognised by `suggest` from shapes: TF1's LSTM cell onto Keras's.

A TF1 `LSTMCell`/`BasicLSTMCell` keeps one kernel `[input + units, 4 * units]`
(gates i, j, f, o) and a bias `[4 * units]`; Keras `LSTM` keeps `kernel
[input, 4 * units]`, `recurrent_kernel [units, 4 * units]` and `bias` (gates i, f,
c, o, and TF1's `forget_bias` added at run time moved into the bias). A target
layer of that shape whose one source layer of the TF1 shape is found gets the
`lstm` preset's transforms (`rules_file.load_rules`, with the two layers' names
as its parameters); `forget_bias` is the preset's parameter (1.0, TF1's default),
which the written rules file carries for the user to check.
"""

from __future__ import annotations

from est_ckpt.mapping.evidence import Var
from est_ckpt.mapping.rules_file import load_rules


def lstm_params() -> dict:
    """The `lstm` preset's number parameters (`forget_bias`), as a written rules file carries them."""
    return load_rules("lstm").numbers


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
    preset = load_rules("lstm")
    out = []
    for layer, found in fits.items():
        if len(found) == 1 and taken.count(found[0]) == 1:
            rules = load_rules(preset, keras=layer, tf1=found[0])
            by_name = {w.name: w for w in cells[found[0]].values()}
            for v in keras[layer].values():
                _, sources, transforms = next(rules.candidates(v.name))  # the rule onto the Keras name
                out.append((v, by_name[sources[0]], list(transforms)))
    return out


__all__ = ["lstm_params", "lstm_pairs"]
