"""The mapping between two models' checkpoints, suggested from the evidence they carry and never guessed.

`suggest_mapping(source, target)` proposes, for each variable of the new model
(TARGET's weights: floating-point tensors of one dimension or more, as
`targets_from_checkpoint` names them; optimizer slots, step counts and
hyperparameters then follow their variables through the usual planning), the
SOURCE variable that holds its value, reading no tensor value. The evidence
(`mapping.evidence`): the same name (confidence 1); kind (`kernel`, `bias`,
`gamma` ... after synonyms) and dtype, which must agree; shape (equal, a 2-D
transpose, or the same elements reshaped); the name tokens both checkpoints
use, weighted by rarity; layer numbering; and pairs already made in the same
layer. A Keras LSTM layer takes a TF1 LSTM cell through the `lstm` preset's
transforms (`mapping.layouts`).

Each target's candidates are scored. A pair is proposed only when the target
and the source are each other's single best, by a margin; a target whose best
candidates the evidence cannot tell apart is `ambiguous` (they are listed), one
with no candidate `unmatched`. A pair made takes its source out of the other
targets' candidates, and the rest are scored again. Where no pair stands out
alone, a few targets competing for the same sources are weighed as whole
assignments: a pair is made when every assignment without it scores less by
the margin. Deterministic: ties are never broken by position.
`Suggestion.rules()` is a rules file (`mapping.rules_file`) of the pairs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Optional, Union

from est_ckpt.format import checkpoint
from est_ckpt.mapping import layouts
from est_ckpt.mapping.evidence import Evidence, Var, fit, make_vars, shape_fit
from est_ckpt.mapping.names import NameIndex
from est_ckpt.mapping.optimizer_slots import OPTIMIZER_SCOPES, TF1_SUFFIXES, find_slots
from est_ckpt.mapping.planner import targets_from_checkpoint

_MARGIN = 0.25
_ASSIGN_MAX = 5  # targets weighed together as whole assignments (at most 6**5 of them)


@dataclasses.dataclass(frozen=True)
class Proposal:
    """One suggested pair.

    Attributes:
      target, source: the variables' names (as `map` plans them).
      evidence: what pairs them (`"name"`, `"kind"`, `"shape"`, `"transpose"`, `"reshape"`, `"tokens"`,
        `"order"`, `"layer"`, `"lstm"`, `"values"`).
      confidence: 1 for the same name; else in (0, 1), from the margin over the next candidate.
      transforms: the rule's transforms (none, a transpose, a reshape, or the `lstm` preset's).
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
      values_differ: with `check_values`, `(target, source)` pairs the evidence proposed but whose values
        differ (left out of `pairs`).
    """

    pairs: tuple[Proposal, ...]
    ambiguous: tuple[tuple[str, tuple[str, ...]], ...]
    unmatched: tuple[str, ...]
    values_differ: tuple[tuple[str, str], ...] = ()

    def rules(self, description: str = "suggested by est-ckpt map --suggest") -> dict:
        """A rules file (`est_ckpt_rules` 1) of the pairs, those of the same name too (the file says all)."""
        rules = [
            {
                "target": re.escape(p.target),
                "source": p.source.replace("\\", "\\\\"),
                **({"transforms": list(p.transforms)} if p.transforms else {}),
                "note": f"{', '.join(p.evidence)}; confidence {p.confidence:.2f}",
            }
            for p in self.pairs
        ]
        params = layouts.lstm_params() if any("lstm" in p.evidence for p in self.pairs) else {}
        return {
            "est_ckpt_rules": 1,
            "description": description,
            **({"params": params} if params else {}),
            "rules": rules,
        }


def _weights(info: checkpoint.CheckpointInfo) -> list[Var]:
    index = NameIndex(info)
    slots = {s.key for by_kind in find_slots(info).values() for s in by_kind.values()}
    named = []
    for t in targets_from_checkpoint(info, index=index):
        if not t.shape or not (t.dtype or "").startswith(("float", "bfloat", "half")):
            continue
        found = index.resolve(t.name)[0]
        if found is not None and any(k in slots for k in found[0]):
            continue
        # An optimizer's own variables (`Adam/m/dense/kernel`, `dense/kernel/Adam`) follow their variable.
        if t.name.partition("/")[0].lower() in OPTIMIZER_SCOPES or t.name.rpartition("/")[2] in TF1_SUFFIXES:
            continue
        named.append((t.name, tuple(t.shape), t.dtype))
    return make_vars(named)


def _confidence(least: float) -> float:
    return 0.99 if math.isinf(least) else round(min(0.95, 0.5 + least / 4), 2)


class _Matcher:
    """Pairs TARGETS with SOURCES by score, in rounds (see the module docstring)."""

    def __init__(self, evidence: Evidence):
        self.evidence = evidence

    def match(self, targets: list[Var], sources: list[Var]) -> tuple[list[Proposal], dict]:
        """`(pairs, {ambiguous target: its best sources})`."""
        if len(targets) == len(sources) == 1:  # a cell of one layer's one weight: no other candidate to weigh
            t, s = targets[0], sources[0]
            shape = fit(t, s)
            if shape is None:
                return [], {}
            evidence = self.evidence.score(t, s, shape, None, None)[1]
            return [self.pair(t, s, evidence, 0.99, shape[2])], {}
        pairs: list[Proposal] = []
        while True:
            taken = {p.source for p in pairs}
            done = {p.target for p in pairs}
            left_t = [t for t in targets if t.name not in done]
            left_s = [s for s in sources if s.name not in taken]
            scores = self._scores(left_t, left_s)
            made, ambiguous = self._round(left_t, left_s, scores)
            if not made:
                made, ambiguous = self._assign(left_t, left_s, scores, ambiguous)
            pairs += made
            if not made:
                return pairs, ambiguous

    def pair(self, t: Var, s: Var, evidence, confidence: float, transforms) -> Proposal:
        self.evidence.paired(t, s)
        return Proposal(t.name, s.name, tuple(evidence), confidence, transforms)

    def _scores(self, targets: list[Var], sources: list[Var]) -> dict[str, list[tuple]]:
        """Each target's candidates, best first: `(score, source, evidence, transforms)`."""
        t_ranks, s_ranks = self.evidence.ranks(targets, sources), self.evidence.ranks(sources, targets)
        buckets: dict[tuple, list[Var]] = {}  # only the same dtype and size can fit
        for s in sources:
            buckets.setdefault((s.dtype, s.size), []).append(s)
        scores = {}
        for t in targets:
            row = []
            for s in buckets.get((t.dtype, t.size), ()):
                shape = fit(t, s)
                if shape is not None:
                    score, evidence = self.evidence.score(t, s, shape, t_ranks[t.name], s_ranks[s.name])
                    row.append((score, s, evidence, shape[2]))
            scores[t.name] = sorted(row, key=lambda r: (-r[0], r[1].name))
        return scores

    def _round(self, targets, sources, scores) -> tuple[list[Proposal], dict]:
        """The pairs whose target and source are each other's single best by the margin."""
        by_source: dict[str, list[float]] = {}
        for row in scores.values():
            for score, s, _, _ in row:
                by_source.setdefault(s.name, []).append(score)
        made, ambiguous = [], {}
        for t in targets:
            row = scores[t.name]
            if not row:
                continue
            top, s, evidence, transforms = row[0]
            margin = top - row[1][0] if len(row) > 1 else math.inf
            others = sorted(by_source[s.name], reverse=True)  # this source's scores from every target
            source_margin = others[0] - others[1] if len(others) > 1 else math.inf
            if margin >= _MARGIN and others[0] == top and source_margin >= _MARGIN:
                made.append(self.pair(t, s, evidence, _confidence(min(margin, source_margin)), transforms))
            else:
                ambiguous[t.name] = tuple(c.name for score, c, _, _ in row if top - score < _MARGIN)
        return made, ambiguous

    def _assign(self, targets, sources, scores, ambiguous) -> tuple[list[Proposal], dict]:
        """Where no pair stands out alone: the best whole assignment of a few targets that compete for the
        same sources; each of its pairs is made only when every assignment without it scores less by the
        margin (two LayerNorms sharing their tokens: swapping them costs more than either gains)."""
        made: list[Proposal] = []
        for component in _components([t for t in targets if scores[t.name]], scores):
            if len(component) > _ASSIGN_MAX:
                continue
            rows = [scores[t.name][:_ASSIGN_MAX] for t in component]
            totals: dict[frozenset, float] = {}
            _assignments(rows, 0, frozenset(), frozenset(), 0.0, totals)
            ranked = sorted(totals.items(), key=lambda kv: -kv[1])
            (winner, top), rest = ranked[0], ranked[1:]
            for i, name in sorted(winner):
                rival = max((v for k, v in rest if (i, name) not in k), default=-math.inf)
                if top - rival >= _MARGIN:
                    _, s, evidence, transforms = next(r for r in rows[i] if r[1].name == name)
                    made.append(self.pair(component[i], s, evidence, _confidence(top - rival), transforms))
        return made, ({} if made else ambiguous)


def _components(targets: list[Var], scores) -> list[list[Var]]:
    """The targets grouped by the candidates they share (in TARGET's order)."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for t in targets:
        for _, s, _, _ in scores[t.name]:
            parent[root("s:" + s.name)] = root("t:" + t.name)
    out: dict[str, list[Var]] = {}
    for t in targets:
        out.setdefault(root("t:" + t.name), []).append(t)
    return list(out.values())


def _assignments(rows, i: int, chosen: frozenset, used: frozenset, total: float, out: dict) -> None:
    """Every assignment of the rows' targets to distinct candidates (or none), by its total score."""
    if i == len(rows):
        out[chosen] = total
        return
    for score, s, _, _ in rows[i]:
        if s.name not in used:
            _assignments(rows, i + 1, chosen | {(i, s.name)}, used | {s.name}, total + score, out)
    _assignments(rows, i + 1, chosen, used, total, out)


def suggest_mapping(
    source: Union[str, checkpoint.CheckpointInfo],
    target: Union[str, checkpoint.CheckpointInfo],
    *,
    check_values: bool = False,
) -> Suggestion:
    """Proposes which SOURCE variable gives each TARGET weight its value (see the module docstring).

    `check_values`: TARGET was made from the same weights (a template saved from
    the model the source was loaded into, say), so values confirm: a proposed
    pair whose values agree gains the evidence `"values"` and confidence 1; one
    whose values differ is left out and listed in `values_differ`; an ambiguous
    target that exactly one candidate's values equal is paired with it. Pairs
    computed by a layout's transforms (an LSTM's gates) are not checked.

    Variables are first paired by name; then within cells of one dtype, size, kind
    and layer numbering (`layer_3`: the cell of the same layer); what is left, across
    cells. So a model of many alike layers is paired cell by cell, in about linear time.
    """
    src = source if isinstance(source, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(source)
    tpl = target if isinstance(target, checkpoint.CheckpointInfo) else checkpoint.read_checkpoint(target)
    targets, sources = _weights(tpl), _weights(src)
    evidence = Evidence(targets, sources)
    matcher = _Matcher(evidence)
    pairs: dict[str, Proposal] = {}
    by_name = {s.name: s for s in sources}
    for t in targets:  # the same name, the same kind of value: nothing else to weigh
        s = by_name.get(t.name)
        shape = None if s is None else fit(t, s)
        if shape is not None:
            pairs[t.name] = matcher.pair(t, s, ("name",), 1.0, shape[2])
    for t, s, transforms in layouts.lstm_pairs(*_left(targets, sources, pairs)):
        pairs[t.name] = matcher.pair(t, s, ("kind", "lstm", "shape"), 0.9, tuple(transforms))

    # Cells: one kind, dtype, size and layer number (`layer_3` on both sides: the same layer, a layer added
    # or removed being the last). What a cell leaves is weighed across cells.
    cells: dict[tuple, tuple[list[Var], list[Var]]] = {}
    for side, vs in enumerate(_left(targets, sources, pairs)):
        for v in vs:
            cells.setdefault((v.kind, v.dtype, v.size, v.number or (0,)), ([], []))[side].append(v)
    for cell_targets, cell_sources in cells.values():
        if not (cell_targets and cell_sources):
            continue
        for p in matcher.match(cell_targets, cell_sources)[0]:
            order = p.evidence if "order" in p.evidence else (*p.evidence, "order")
            pairs[p.target] = dataclasses.replace(p, evidence=order)
    found, ambiguous = matcher.match(*_left(targets, sources, pairs))
    pairs.update((p.target, p) for p in found)
    differ: list[tuple[str, str]] = []
    if check_values:
        differ = _check_values(pairs, ambiguous, src, tpl)
    order = {t.name: i for i, t in enumerate(targets)}
    gone = {t for t, _ in differ}
    unmatched = tuple(
        t.name for t in targets if t.name not in pairs and t.name not in ambiguous and t.name not in gone
    )
    return Suggestion(
        tuple(sorted(pairs.values(), key=lambda p: order[p.target])),
        tuple((name, ambiguous[name]) for name in sorted(ambiguous, key=order.get)),
        unmatched,
        tuple(sorted(differ, key=lambda d: order[d[0]])),
    )


def _check_values(pairs: dict, ambiguous: dict, src, tpl) -> list[tuple[str, str]]:
    """Confirms `pairs` by their values, in place, and settles `ambiguous` targets one candidate's values
    equal; returns the `(target, source)` pairs whose values differ (taken out of `pairs`)."""
    import numpy as np

    s_index, t_index = NameIndex(src), NameIndex(tpl)
    s_values: dict = {}  # a candidate of several ambiguous targets is read once

    def value(info, index, name):
        found = index.resolve(name)[0]
        return None if found is None or len(found[0]) != 1 else info.read_tensor(found[0][0])

    def source_value(name):
        if name not in s_values:
            s_values[name] = value(src, s_index, name)
        return s_values[name]

    def moved(v, transforms, shape):
        for op in transforms:
            if "transpose" in op:
                v = v.transpose(op["transpose"])
            elif "reshape" in op:
                v = v.reshape(shape)
            else:  # a layout's slices, reorders and adds: not checked
                return None
        return v

    def agrees(t_value, s_name, transforms=None) -> Optional[bool]:
        s_value = source_value(s_name)
        if t_value is None or s_value is None:
            return None
        if transforms is None:
            found = shape_fit(t_value.shape, s_value.shape)
            if found is None:
                return False
            transforms = found[2]
        s_value = moved(s_value, transforms, t_value.shape)
        return None if s_value is None else bool(np.array_equal(s_value, t_value))

    differ = []
    for name, p in list(pairs.items()):
        same = agrees(value(tpl, t_index, name), p.source, p.transforms)
        if same:
            pairs[name] = dataclasses.replace(p, evidence=(*p.evidence, "values"), confidence=1.0)
        elif same is False:
            del pairs[name]
            differ.append((name, p.source))
    taken = _taken(pairs)
    for name, candidates in list(ambiguous.items()):
        t_value = value(tpl, t_index, name)
        equal = [c for c in candidates if c not in taken and agrees(t_value, c)]
        if len(equal) == 1:
            transforms = shape_fit(t_value.shape, source_value(equal[0]).shape)[2]
            pairs[name] = Proposal(name, equal[0], ("kind", "values"), 1.0, transforms)
            taken.add(equal[0])
            del ambiguous[name]
    return differ


def _taken(pairs: dict[str, Proposal]) -> set[str]:
    return {p.source for p in pairs.values()}


def _left(targets: list[Var], sources: list[Var], pairs: dict[str, Proposal]) -> tuple[list[Var], list[Var]]:
    """The targets and sources no pair holds yet."""
    taken = _taken(pairs)
    return [t for t in targets if t.name not in pairs], [s for s in sources if s.name not in taken]


__all__ = ["Proposal", "Suggestion", "suggest_mapping"]
