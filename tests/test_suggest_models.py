"""`map --suggest` on the issue's set of model pairs, each built here with TensorFlow (`tests/suggest_pairs.py`).

For every pair, and for its variant with a layer added or removed on one side:
at least 95% of the target's weights that have a counterpart are paired with it,
none is paired wrongly, and the rules file `--write_rules` writes holds no wrong
pair. Where every target weight is paired, `convert --like` with the written
rules exits 0; where the pair is complete, the new model then continues as the
old one: the same outputs, and where both train with the same optimizer, one
more step equal within 1e-6.
"""

from __future__ import annotations

import json
import re

import pytest

from est_ckpt.mapping.suggest import suggest_mapping
from tests import suggest_pairs as sp
from tests.cli import run_cli

pytestmark = [pytest.mark.keras2, pytest.mark.estimator]
tf = pytest.importorskip("tensorflow")

PAIRS = {
    "bert": lambda d: sp.bert_onto_keras_encoder(d),
    "bert_layer_removed": lambda d: sp.bert_onto_keras_encoder(d, layers=3, target_layers=2),
    "bert_layer_added": lambda d: sp.bert_onto_keras_encoder(d, layers=2, target_layers=3),
    "lstm": lambda d: sp.lstm_onto_keras(d),
    "lstm_layer_added": lambda d: sp.lstm_onto_keras(d, extra_dense=True),
    "dnn_v2": lambda d: sp.canned_v1_onto_v2(d, "dnn"),
    "dnn_v2_layer_added": lambda d: sp.canned_v1_onto_v2(d, "dnn", target_hidden=(6, 3, 3)),
    "linear_v2": lambda d: sp.canned_v1_onto_v2(d, "linear"),
    "linear_v2_column_added": lambda d: sp.canned_v1_onto_v2(d, "linear", target_hidden=(6, 3, 3)),
    "combined_v2": lambda d: sp.canned_v1_onto_v2(d, "combined"),
    "combined_v2_layer_removed": lambda d: sp.canned_v1_onto_v2(d, "combined", hidden=(6, 3, 3)),
    "dnn_keras": lambda d: sp.canned_v1_onto_keras(d, "dnn"),
    "dnn_keras_numbered": lambda d: sp.canned_v1_onto_keras(d, "dnn", names=False),
    "dnn_keras_layer_added": lambda d: sp.canned_v1_onto_keras(d, "dnn", target_hidden=(6, 3, 3)),
    "dnn_keras_layer_removed": lambda d: sp.canned_v1_onto_keras(d, "dnn", hidden=(6, 3, 3)),
    "linear_keras": lambda d: sp.canned_v1_onto_keras(d, "linear"),
    "combined_keras": lambda d: sp.canned_v1_onto_keras(d, "combined"),
    "combined_keras_layer_added": lambda d: sp.canned_v1_onto_keras(d, "combined", target_hidden=(6, 3, 3)),
    "layers_sequential": lambda d: sp.layers_model_fn_onto_keras(d, functional=False),
    "layers_functional": lambda d: sp.layers_model_fn_onto_keras(d, functional=True),
    "layers_sequential_layer_added": lambda d: sp.layers_model_fn_onto_keras(
        d, False, target_hidden=(16, 8, 8)
    ),
    "layers_functional_layer_removed": lambda d: sp.layers_model_fn_onto_keras(d, True, hidden=(16, 8, 4)),
}


def _written_pairs(rules_path) -> dict:
    """`{target: source}` of the written rules (each target regex is one escaped name)."""
    rules = json.loads(rules_path.read_text())["rules"]
    out = {}
    for rule in rules:
        target = re.sub(r"\\(.)", r"\1", rule["target"])
        assert re.fullmatch(rule["target"], target), rule
        out[target] = rule["source"]
    return out


@pytest.mark.parametrize("case", list(PAIRS))
def test_suggest_pairs_the_model_pair_and_writes_no_wrong_pair(tmp_path, case):
    pair = PAIRS[case](str(tmp_path))
    suggestion = suggest_mapping(pair.src, pair.tpl)
    got = {p.target: p.source for p in suggestion.pairs}
    wrong = {t: (s, pair.truth.get(t)) for t, s in got.items() if pair.truth.get(t) != s}
    assert not wrong, f"{pair.name}: wrong pairs (target: (suggested, true)) {wrong}"
    right = sum(got.get(t) == s for t, s in pair.truth.items())
    print(f"{pair.name} [{case}]: {right}/{len(pair.truth)} paired, {len(suggestion.ambiguous)} ambiguous")
    assert right >= 0.95 * len(pair.truth), (pair.name, suggestion.ambiguous, suggestion.unmatched)

    rules = tmp_path / "suggested.json"
    proc = run_cli(
        "map",
        pair.src,
        f"--target={pair.tpl}",
        "--optimizer_state",
        "--suggest",
        f"--write_rules={rules}",
        "--json",
    )
    everything = not (suggestion.ambiguous or suggestion.unmatched)
    assert proc.returncode == (0 if everything else 1), proc.stderr
    assert everything or not pair.complete
    planned = json.loads(proc.stdout)
    assert {m["target"] for m in planned["mapped"] if "evidence" in m} >= set(got)
    for target, source in _written_pairs(rules).items():
        assert pair.truth.get(target) == source, (target, source)
    if not everything:
        return
    out = tmp_path / "out"
    proc = run_cli("convert", pair.src, f"{out}/", f"--like={pair.tpl}", f"--rules={rules}")
    assert proc.returncode == 0, proc.stderr
    if pair.complete:
        pair.check(str(out))
