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
    if t.dtype != s.dtype or t.kind != s.kind:
        return None
    if t.shape == s.shape:
        return 3.0, "shape", ()
    if len(t.shape) == len(s.shape) == 2 and t.shape == s.shape[::-1]:
        return 2.0, "transpose", ({"transpose": [1, 0]},)
    if math.prod(t.shape) == math.prod(s.shape):
        return 1.5, "reshape", ({"reshape": None},)
    return None


def _groups(vs: list[_Var]) -> dict[tuple, list[_Var]]:
    """The variables of each kind, dtype and size."""
    out: dict[tuple, list[_Var]] = {}
    for v in vs:
        out.setdefault((v.kind, v.dtype, math.prod(v.shape)), []).append(v)
    return out


def _ranks(vs: list[_Var], other: list[_Var]) -> dict[str, Optional[int]]:
    """Each variable's rank by layer numbering among those of its kind, dtype and size; None where the other
    side holds another number of them (a layer added or removed: ranks would pair the wrong ones) or where
    they are numbered alike."""
    theirs = {key: len(group) for key, group in _groups(other).items()}
    out: dict[str, Optional[int]] = {}
    for key, group in _groups(vs).items():
        numbers = sorted({v.number or (0,) for v in group})
        usable = len(numbers) == len(group) == theirs.get(key)
        for v in group:
            out[v.name] = numbers.index(v.number or (0,)) if usable else None
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


def _match(targets: list[_Var], sources: list[_Var]) -> tuple[list[Proposal], dict[str, tuple[str, ...]]]:
    """Pairs by score, in rounds (see the module docstring): `(pairs, {ambiguous target: its best sources})`."""
    if len(targets) == len(sources) == 1:  # a cell of one layer's one weight: no other candidate to weigh
        t, s = targets[0], sources[0]
        fit = _fit(t, s)
        if fit is None:
            return [], {}
        evidence = _score(t, s, fit, None, None)[1]
        return [Proposal(t.name, s.name, tuple(evidence), 0.99, fit[2])], {}
    pairs: list[Proposal] = []
    ambiguous: dict[str, tuple[str, ...]] = {}
    paired: set = set()
    while True:
        left_t = [t for t in targets if t.name not in paired]
        taken = {p.source for p in pairs}
        left_s = [s for s in sources if s.name not in taken]
        t_ranks, s_ranks = _ranks(left_t, left_s), _ranks(left_s, left_t)
        buckets: dict[tuple, list[_Var]] = {}  # only the same dtype and size can fit
        for s in left_s:
            buckets.setdefault((s.dtype, math.prod(s.shape)), []).append(s)
        scores: dict[str, list[tuple[float, str, list[str], tuple]]] = {}
        best_for_source: dict[str, list[float]] = {}
        for t in left_t:
            row = []
            for s in buckets.get((t.dtype, math.prod(t.shape)), ()):
                fit = _fit(t, s)
                if fit is not None:
                    score, evidence = _score(t, s, fit, t_ranks[t.name], s_ranks[s.name])
                    row.append((score, s.name, evidence, fit[2]))
                    best_for_source.setdefault(s.name, []).append(score)
            scores[t.name] = sorted(row, key=lambda r: (-r[0], r[1]))
        made = 0
        ambiguous = {}
        for t in left_t:
            row = scores[t.name]
            if not row:
                continue
            top, name, evidence, transforms = row[0]
            margin = top - row[1][0] if len(row) > 1 else math.inf
            others = sorted(best_for_source[name], reverse=True)  # this source's scores from every target
            source_margin = others[0] - others[1] if len(others) > 1 else math.inf
            if margin >= _MARGIN and others[0] == top and source_margin >= _MARGIN:
                least = min(margin, source_margin)
                confidence = 0.99 if math.isinf(least) else min(0.95, 0.5 + least / 4)
                pairs.append(Proposal(t.name, name, tuple(evidence), round(confidence, 2), transforms))
                paired.add(t.name)
                made += 1
            else:
                ambiguous[t.name] = tuple(n for score, n, _, _ in row if top - score < _MARGIN)
        if not made:
            return pairs, ambiguous


def suggest_mapping(
    source: Union[str, checkpoint.CheckpointInfo], target: Union[str, checkpoint.CheckpointInfo]
) -> Suggestion:
    """Proposes which SOURCE variable gives each TARGET weight its value (see the module docstring).

    Variables are first paired by name; then within cells of one dtype, size, kind
    and layer numbering (`layer_3`: the cell of the same layer); what is left, across
    cells. So a model of many alike layers is paired cell by cell, in about linear time.
    """
    src = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    tpl = target if isinstance(target, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(target)
    targets, sources = _weights(tpl), _weights(src)
    pairs: dict[str, Proposal] = {}
    by_name = {s.name: s for s in sources}
    for t in targets:  # the same name, the same kind of value: nothing else to weigh
        s = by_name.get(t.name)
        fit = None if s is None else _fit(t, s)
        if fit is not None:
            pairs[t.name] = Proposal(t.name, s.name, ("name",), 1.0, fit[2])

    # Cells: one kind, dtype, size and layer numbering, where both sides hold as many of that kind, dtype
    # and size (so that a number means the same layer on both).
    taken = {p.source for p in pairs.values()}
    left_t = [t for t in targets if t.name not in pairs]
    left_s = [s for s in sources if s.name not in taken]
    counts = {key: len(group) for key, group in _groups(left_s).items()}
    balanced = {key for key, group in _groups(left_t).items() if counts.get(key) == len(group)}
    cells: dict[tuple, tuple[list[_Var], list[_Var]]] = {}
    for side, vs in enumerate((left_t, left_s)):
        for v in vs:
            key = (v.kind, v.dtype, math.prod(v.shape))
            if key in balanced:
                cells.setdefault((*key, v.number or (0,)), ([], []))[side].append(v)
    for cell_targets, cell_sources in cells.values():
        for p in _match(cell_targets, cell_sources)[0]:
            order = p.evidence if "order" in p.evidence else (*p.evidence, "order")
            pairs[p.target] = dataclasses.replace(p, evidence=order)
    taken = {p.source for p in pairs.values()}
    found, ambiguous = _match(
        [t for t in targets if t.name not in pairs], [s for s in sources if s.name not in taken]
    )
    pairs.update((p.target, p) for p in found)
    order = {t.name: i for i, t in enumerate(targets)}
    unmatched = tuple(t.name for t in targets if t.name not in pairs and t.name not in ambiguous)
    return Suggestion(
        tuple(sorted(pairs.values(), key=lambda p: order[p.target])),
        tuple((name, ambiguous[name]) for name in sorted(ambiguous, key=order.get)),
        unmatched,
    )


__all__ = ["Proposal", "Suggestion", "suggest_mapping"]
