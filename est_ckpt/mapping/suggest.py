"""The mapping between two models' checkpoints, suggested from the evidence they carry and never guessed.

`suggest_mapping(source, target)` proposes, for each variable of the new model
(TARGET's weights: floating-point tensors of one dimension or more, as
`targets_from_checkpoint` names them; optimizer slots, step counts and
hyperparameters then follow their variables through the usual planning), the
SOURCE variable that holds its value, reading no tensor value. The evidence:

- name: the same name (confidence 1);
- kind: the last name token after synonyms (`kernel` = `weights` = `w`,
  `gamma` = `scale`, `beta` = `offset`, `embeddings` = `embedding`) must agree;
- shape: equal; a 2-D transpose (`{"transpose": [1, 0]}`); or the same
  elements in another shape (`{"reshape": null}`), in that order of preference;
- tokens: the other name tokens after synonyms (`hiddenlayer` = `dense` = `fc`,
  `layer_norm` = `layernorm`, `fully_connected`), by their overlap;
- order: among the variables of one kind and shape on each side, the rank of
  their layer numbering (`hiddenlayer_1`, `dense_1`; no number counts as 0),
  when both sides number them apart.

Each target's candidates are scored. A pair is proposed only when the target
and the source are each other's single best, by a margin; a target whose best
candidates the evidence cannot tell apart is `ambiguous` (they are listed), one
with no candidate `unmatched`. A pair made takes its source out of the other
targets' candidates, and the rest are scored again. Deterministic: ties are
never broken by position. `Suggestion.rules()` is a rules file
(`mapping.rules_file`) of the pairs alone.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional, Union

from est_ckpt.format import checkpoint
from est_ckpt.mapping.names import NameIndex
from est_ckpt.mapping.optimizer_slots import OPTIMIZER_SCOPES, TF1_SUFFIXES, find_slots
from est_ckpt.mapping.planner import targets_from_checkpoint

# Canonical token of each synonym (lowercase).
_SYNONYMS = {
    "weights": "kernel", "weight": "kernel", "w": "kernel", "matrix": "kernel",
    "biases": "bias", "b": "bias",
    "scale": "gamma", "offset": "beta", "center": "beta",
    "embedding": "embeddings", "word_embeddings": "embeddings",
    "hiddenlayer": "dense", "fc": "dense", "fully": "dense", "connected": "", "linear": "dense",
    "layernorm": "layer_norm", "layer": "layer", "ln": "layer_norm",
    "normalization": "norm", "batchnorm": "batch_norm", "bn": "batch_norm",
    "cell": "", "basic": "", "rnn": "",
}  # fmt: skip
_KINDS = (
    "kernel",
    "bias",
    "gamma",
    "beta",
    "embeddings",
    "moving_mean",
    "moving_variance",
    "recurrent_kernel",
)
_SPLIT = re.compile(r"[/._\-]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_MARGIN = 0.25


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One suggested pair.

    Attributes:
      target, source: the variables' names (as `map` plans them).
      evidence: what pairs them (`"name"`, `"kind"`, `"shape"`, `"transpose"`, `"reshape"`, `"tokens"`,
        `"order"`).
      confidence: 1 for the same name; else in (0, 1), from the margin over the next candidate.
      transforms: the rule's transforms (`[]`, a transpose or a reshape).
    """

    target: str
    source: str
    evidence: tuple[str, ...]
    confidence: float
    transforms: tuple[dict, ...] = ()


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """What `suggest_mapping` found.

    Attributes:
      pairs: the proposed pairs, in TARGET's order.
      ambiguous: `(target, its best candidates' source names)` the evidence cannot tell apart.
      unmatched: targets with no candidate of their kind, dtype and size.
    """

    pairs: tuple[Proposal, ...]
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...]
    unmatched: tuple[str, ...]

    def rules(self, description: str = "suggested by est-ckpt map --suggest") -> dict:
        """A rules file (`est_ckpt_rules` 1) of the pairs whose names differ or whose values move."""
        rules = [
            {
                "target": re.escape(p.target),
                "source": p.source.replace("\\", "\\\\"),
                **({"transforms": list(p.transforms)} if p.transforms else {}),
                "note": f"{', '.join(p.evidence)}; confidence {p.confidence:.2f}",
            }
            for p in self.pairs
            if p.source != p.target or p.transforms
        ]
        return {"est_ckpt_rules": 1, "description": description, "rules": rules}


@dataclasses.dataclass(frozen=True)
class _Var:
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    tokens: frozenset
    number: tuple[int, ...]


def _tokens(name: str) -> tuple[str, frozenset, tuple[int, ...]]:
    """`(kind, other canonical tokens, layer numbering)` of a variable name."""
    parts = [p.lower() for p in _SPLIT.split(name) if p]
    words = [_SYNONYMS.get(p, p) for p in parts if not p.isdigit()]
    words = [w for w in words if w]
    kind = ""
    for size in (2, 1):  # `recurrent_kernel`, `moving_mean` first
        tail = "_".join(words[-size:])
        if tail in _KINDS:
            kind, words = tail, words[:-size]
            break
    number = tuple(int(p) for p in parts if p.isdigit())
    return kind, frozenset(words), number


def _weights(info: checkpoint.CheckpointInfo) -> list[_Var]:
    index = NameIndex(info)
    slots = {s.key for by_kind in find_slots(info).values() for s in by_kind.values()}
    out = []
    for t in targets_from_checkpoint(info):
        if not t.shape or not (t.dtype or "").startswith(("float", "bfloat", "half")):
            continue
        found = index.resolve(t.name)[0]
        if found is not None and any(k in slots for k in found[0]):
            continue
        # An optimizer's own variables (`Adam/m/dense/kernel`, `dense/kernel/Adam`) follow their variable.
        if t.name.partition("/")[0].lower() in OPTIMIZER_SCOPES or t.name.rpartition("/")[2] in TF1_SUFFIXES:
            continue
        kind, tokens, number = _tokens(t.name)
        out.append(_Var(t.name, tuple(t.shape), t.dtype, kind, tokens, number))
    return out


def _fit(t: _Var, s: _Var) -> Optional[tuple[float, str, tuple[dict, ...]]]:
    """`(shape score, evidence, transforms)` if `s` can give `t` its value, else None."""
    if t.dtype != s.dtype or (t.kind and s.kind and t.kind != s.kind) or (bool(t.kind) != bool(s.kind)):
        return None
    if t.shape == s.shape:
        return 3.0, "shape", ()
    if len(t.shape) == len(s.shape) == 2 and t.shape == s.shape[::-1]:
        return 2.0, "transpose", ({"transpose": [1, 0]},)
    if math.prod(t.shape) == math.prod(s.shape):
        return 1.5, "reshape", ({"reshape": None},)
    return None


def _ranks(vs: list[_Var]) -> dict[str, Optional[int]]:
    """Each variable's rank by layer numbering among those of its kind and shape (None: numbered alike)."""
    groups: dict = {}
    for v in vs:
        groups.setdefault((v.kind, math.prod(v.shape)), []).append(v)
    out: dict[str, Optional[int]] = {}
    for group in groups.values():
        numbers = sorted({v.number or (0,) for v in group})
        distinct = len(numbers) == len(group)
        for v in group:
            out[v.name] = numbers.index(v.number or (0,)) if distinct else None
    return out


def _score(t: _Var, s: _Var, fit, t_rank, s_rank) -> tuple[float, list[str]]:
    shape_score, how, _ = fit
    evidence = ["kind", how] if t.kind else [how]
    score = shape_score
    union = t.tokens | s.tokens
    if union:
        overlap = len(t.tokens & s.tokens) / len(union)
        score += overlap
        if overlap:
            evidence.append("tokens")
    if t_rank is not None and s_rank is not None:
        score += 1.0 if t_rank == s_rank else 0.0
        if t_rank == s_rank:
            evidence.append("order")
    return score, evidence


def suggest_mapping(
    source: Union[str, checkpoint.CheckpointInfo], target: Union[str, checkpoint.CheckpointInfo]
) -> Suggestion:
    """Proposes which SOURCE variable gives each TARGET weight its value (see the module docstring)."""
    src = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    tpl = target if isinstance(target, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(target)
    targets, sources = _weights(tpl), _weights(src)
    pairs: dict[str, Proposal] = {}
    by_name = {s.name: s for s in sources}
    for t in targets:  # the same name, the same kind of value: nothing else to weigh
        s = by_name.get(t.name)
        if s is not None and _fit(t, s) is not None:
            pairs[t.name] = Proposal(t.name, s.name, ("name",), 1.0, _fit(t, s)[2])
    ambiguous: dict[str, tuple[str, ...]] = {}
    while True:
        left_t = [t for t in targets if t.name not in pairs]
        taken = {p.source for p in pairs.values()}
        left_s = [s for s in sources if s.name not in taken]
        t_ranks, s_ranks = _ranks(left_t), _ranks(left_s)
        scores: dict[str, list[tuple[float, str, list[str], tuple]]] = {}
        for t in left_t:
            row = []
            for s in left_s:
                fit = _fit(t, s)
                if fit is not None:
                    score, evidence = _score(t, s, fit, t_ranks[t.name], s_ranks[s.name])
                    row.append((score, s.name, evidence, fit[2]))
            scores[t.name] = sorted(row, key=lambda r: (-r[0], r[1]))
        best_for_source: dict[str, list[float]] = {}
        for row in scores.values():
            for score, name, _, _ in row:
                best_for_source.setdefault(name, []).append(score)
        made = 0
        ambiguous = {}
        for t in left_t:
            row = scores[t.name]
            if not row:
                continue
            top, name, evidence, transforms = row[0]
            runner = row[1][0] if len(row) > 1 else None
            others = sorted(best_for_source[name], reverse=True)  # this source's scores from every target
            source_margin = others[0] - others[1] if len(others) > 1 else math.inf
            margin = top - runner if runner is not None else math.inf
            if margin >= _MARGIN and others[0] == top and source_margin >= _MARGIN:
                confidence = (
                    0.99
                    if math.isinf(min(margin, source_margin))
                    else min(0.95, 0.5 + min(margin, source_margin) / 4)
                )
                pairs[t.name] = Proposal(t.name, name, tuple(evidence), round(confidence, 2), transforms)
                made += 1
            else:
                ambiguous[t.name] = tuple(n for score, n, _, _ in row if top - score < _MARGIN)
        if not made:
            break
    order = {t.name: i for i, t in enumerate(targets)}
    unmatched = tuple(t.name for t in targets if t.name not in pairs and t.name not in ambiguous)
    return Suggestion(
        tuple(sorted(pairs.values(), key=lambda p: order[p.target])),
        tuple((name, ambiguous[name]) for name in sorted(ambiguous, key=order.get)),
        unmatched,
    )


__all__ = ["Proposal", "Suggestion", "suggest_mapping"]
