"""The evidence two variables' names and shapes carry that one holds the other's value (used by `suggest`).

Read from names, shapes and dtypes alone (no tensor value):

- kind: the last name token after synonyms (`kernel` = `weights` = `w`,
  `gamma` = `scale`, `beta` = `offset`; a linear model's `bias_weights` is a
  `bias`) must agree;
- shape: equal; a 2-D transpose; or the same elements in another shape;
- tokens: the other name tokens after synonyms (`hiddenlayer` = `dense` = `fc`,
  `LayerNorm` = `layer_norm`), by their weighted overlap. Only tokens both
  checkpoints use count, each weighted by how rarely they use it (`query`
  tells more than `layer`);
- order: among the variables of one kind and size on each side, the rank of
  their layer numbering (`hiddenlayer_1`, `dense_1`; no number is 0) when both
  sides hold as many; else the same layer number;
- layer: a variable's layer (its name's scope) already paired with the
  candidate's layer, or with another one.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from typing import Iterable, Optional

# Canonical token of each synonym (lowercase).
_SYNONYMS = {
    "weights": "kernel", "weight": "kernel", "w": "kernel", "matrix": "kernel",
    "biases": "bias", "b": "bias",
    "scale": "gamma", "offset": "beta", "center": "beta",
    "embedding": "embeddings", "word_embeddings": "embeddings",
    "hiddenlayer": "dense", "fc": "dense", "fully": "dense", "connected": "", "linear": "dense",
    "layernorm": "layer_norm", "ln": "layer_norm",
    "normalization": "norm", "batchnorm": "batch_norm", "bn": "batch_norm",
    "cell": "", "basic": "", "rnn": "",
}  # fmt: skip
_KINDS = {
    "kernel": "kernel",
    "bias": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "embeddings": "embeddings",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
    "recurrent_kernel": "recurrent_kernel",
}
_SPLIT = re.compile(r"[/._\-]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


@dataclasses.dataclass(frozen=True)
class Var:
    """A weight as the evidence sees it: `layer` is its name's scope; `recurrent`, whether that layer holds a
    `recurrent_kernel` (a recurrent layer's bias pairs only with another recurrent layer's)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    tokens: frozenset
    number: tuple[int, ...]
    layer: str
    recurrent: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def make_vars(named: Iterable[tuple[str, tuple[int, ...], str]]) -> list[Var]:
    """`Var`s of `(name, shape, dtype)`s."""
    fields = []
    for name, shape, dtype in named:
        last = name.rpartition("/")[2]
        if last.lower() == "bias_weights":  # a linear model's bias
            name_parts = name[: -len(last)] + "bias"
        else:
            name_parts = name
        parts = [p.lower() for p in _SPLIT.split(name_parts) if p]
        words = [w for w in (_SYNONYMS.get(p, p) for p in parts if not p.isdigit()) if w]
        kind = ""
        for size in (2, 1):  # `recurrent_kernel`, `moving_mean` first
            if "_".join(words[-size:]) in _KINDS:
                kind, words = _KINDS["_".join(words[-size:])], words[:-size]
                break
        number = tuple(int(p) for p in parts if p.isdigit())
        fields.append((name, tuple(shape), dtype, kind, frozenset(words), number, name.rpartition("/")[0]))
    recurrent = {f[6] for f in fields if f[3] == "recurrent_kernel"}  # the layers of a recurrent kernel
    return [Var(*f, f[6] in recurrent) for f in fields]


def fit(t: Var, s: Var) -> Optional[tuple[float, str, tuple[dict, ...]]]:
    """`(shape score, evidence, transforms)` if `s` can give `t` its value, else None."""
    if t.dtype != s.dtype or t.kind != s.kind or t.recurrent != s.recurrent:
        return None
    return shape_fit(t.shape, s.shape)


def shape_fit(target: tuple, source: tuple) -> Optional[tuple[float, str, tuple[dict, ...]]]:
    """`(shape score, evidence, transforms)` taking a SOURCE-shaped value to TARGET's shape: equal, a 2-D
    transpose, or a reshape of as many elements; None otherwise."""
    target, source = tuple(target), tuple(source)
    if target == source:
        return 1.0, "shape", ()
    if len(target) == len(source) == 2 and target == source[::-1]:
        return 0.75, "transpose", ({"transpose": [1, 0]},)
    if math.prod(target) == math.prod(source):
        return 0.5, "reshape", ({"reshape": None},)
    return None


def groups(vs: Iterable[Var]) -> dict[tuple, list[Var]]:
    """The variables of each kind, dtype and size."""
    out: dict[tuple, list[Var]] = {}
    for v in vs:
        out.setdefault((v.kind, v.dtype, v.size), []).append(v)
    return out


class Evidence:
    """Scores candidate pairs between TARGETS and SOURCES (token weights from both sides' vocabularies)."""

    def __init__(self, targets: list[Var], sources: list[Var]):
        df_t = collections.Counter(tok for v in targets for tok in v.tokens)
        df_s = collections.Counter(tok for v in sources for tok in v.tokens)
        n = len(targets) + len(sources) + 1
        self.weight = {tok: math.log(n / (df_t[tok] + df_s[tok])) for tok in df_t.keys() & df_s.keys()}
        self.layers: dict[str, str] = {}  # target layer -> source layer, of the pairs made
        self.layers_back: dict[str, str] = {}

    def paired(self, t: Var, s: Var) -> None:
        self.layers.setdefault(t.layer, s.layer)
        self.layers_back.setdefault(s.layer, t.layer)

    def ranks(self, vs: list[Var], other: list[Var]) -> dict[str, Optional[int]]:
        """Each variable's rank by layer numbering among those of its kind, dtype and size; None where the
        other side holds another number of them (a layer added or removed) or where they are numbered alike."""
        theirs = {key: len(group) for key, group in groups(other).items()}
        out: dict[str, Optional[int]] = {}
        for key, group in groups(vs).items():
            rank = {n: i for i, n in enumerate(sorted({v.number or (0,) for v in group}))}
            usable = len(rank) == len(group) == theirs.get(key)
            for v in group:
                out[v.name] = rank[v.number or (0,)] if usable else None
        return out

    def score(self, t: Var, s: Var, shape: tuple, t_rank, s_rank) -> tuple[float, list[str]]:
        score, how, _ = shape
        evidence = ["kind", how] if t.kind else [how]
        both = sum(self.weight.get(tok, 0.0) for tok in t.tokens & s.tokens)
        either = sum(self.weight.get(tok, 0.0) for tok in t.tokens | s.tokens)
        if either:
            score += both / either
            if both:
                evidence.append("tokens")
        if t_rank is not None and s_rank is not None:
            if t_rank == s_rank:
                score += 1.0
                evidence.append("order")
        elif t.number and t.number == s.number:
            score += 0.5
            evidence.append("order")
        mine, theirs = self.layers.get(t.layer), self.layers_back.get(s.layer)
        if mine == s.layer:
            score += 0.5
            evidence.append("layer")
        elif mine is not None or theirs is not None:
            score -= 0.5
        return score, evidence


__all__ = ["Evidence", "Var", "fit", "groups", "make_vars", "shape_fit"]
