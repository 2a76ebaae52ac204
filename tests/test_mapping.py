"""Tests of `est_ckpt.mapping` (the warm-start plan, no TensorFlow in the code under test) and `est-ckpt map`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import est_ckpt
from est_ckpt import mapping
from est_ckpt.commands.map import to_json
from est_ckpt.errors import (
    AmbiguousNameError,
    MappingError,
    MismatchError,
    UnmappedVariablesError,
    UnusedMappingError,
)
from est_ckpt.format import checkpoint
from tests.cli import run_cli
from tests.fixtures import VV

SCALAR = ((), "float32")


def _info(keys_shapes: dict, fmt: str = "tf1") -> checkpoint.CheckpointInfo:
    tensors = {
        k: checkpoint.TensorInfo(key=k, dtype="float32", shape=s, name=k) for k, s in keys_shapes.items()
    }
    return checkpoint.CheckpointInfo("/ckpt/prefix", fmt, tensors, None, {}, bundle=None)


def _tf2_info(named: dict) -> checkpoint.CheckpointInfo:
    """An object-based `CheckpointInfo` of `{key: (recorded name, shape)}`, object paths from the keys."""
    tensors = {
        k: checkpoint.TensorInfo(key=k, dtype="float32", shape=s, name=n, object_path=k[: -len(VV)])
        for k, (n, s) in named.items()
    }
    return checkpoint.CheckpointInfo("/ckpt/prefix", "tf2", tensors, None, {}, bundle=None)


def test_public_names_are_lazy_and_tf_free():
    """`est_ckpt.plan_mapping` and `WarmStartPlan` come from `est_ckpt.mapping`, which never imports TensorFlow."""
    code = (
        "import sys, est_ckpt; est_ckpt.plan_mapping; est_ckpt.WarmStartPlan; "
        "import est_ckpt.commands.map; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert est_ckpt.plan_mapping is mapping.plan_mapping


def test_identity_names_from_tf1(ckpts):
    """Without maps every variable reads the key of its own name, and extra keys stay unused."""
    plan = mapping.plan_mapping(ckpts("tf1"), {"a": SCALAR, "scoped/c": SCALAR})
    assert plan.mapping() == {"a": "a", "scoped/c": "scoped/c"}
    assert plan.unused_sources == ("b",)
    assert plan.ok
    plan.raise_for_errors()


def test_scope_maps_follow_init_from_checkpoint_grammar():
    """'old/': 'new/', '/': 'new/' and 'old/': '/' rewrite scopes exactly as init_from_checkpoint does."""
    info = _info({"a": (), "old/x": (), "old/deep/y": (), "ckpt/top": ()})
    plan = mapping.plan_mapping(info, ["new/x", "new/deep/y"], assignment_map={"old/": "new/"})
    assert plan.mapping() == {"new/x": "old/x", "new/deep/y": "old/deep/y"}
    plan = mapping.plan_mapping(info, ["wrap/a"], assignment_map={"/": "wrap/"})
    assert plan.mapping() == {"wrap/a": "a"}
    plan = mapping.plan_mapping(info, ["top"], assignment_map={"ckpt/": "/"})
    assert plan.mapping() == {"top": "ckpt/top"}


def test_exact_beats_most_specific_scope_beats_rules_beats_name():
    """An exact entry wins over the deepest scope entry, which wins over rename rules, which win over the name."""
    info = _info({"x": (), "s1/v": (), "s2/v": (), "s2/w": (), "r/z": (), "plain": ()})
    plan = mapping.plan_mapping(
        info,
        ["m/in/v", "m/v", "m/w", "z", "plain"],
        assignment_map={"x": "m/w", "s1/": "m/", "s2/": "m/in/"},
        rename_rules=[("z", "r/z")],
    )
    assert plan.mapping() == {"m/in/v": "s2/v", "m/v": "s1/v", "m/w": "x", "z": "r/z", "plain": "plain"}
    assert [a.via for a in plan.assignments] == ["scope", "scope", "assignment_map", "rule", "name"]


def test_rename_rules_first_full_match_wins_and_none_skips():
    """Rules are tried in order on whole names; groups expand; a None replacement skips the variable."""
    info = _info({"old/a_1": (), "other/b": (), "head/k": ()})
    rules = [
        (r"new/(\w+)_(?P<n>\d)", r"old/\1_\g<n>"),
        (r"new/.*", "other/b"),
        (r"new/(.*)", r"never/\1"),
        (r"head/.*", None),
    ]
    plan = mapping.plan_mapping(info, ["new/a_1", "new/b", "head/k"], rename_rules=rules)
    assert plan.mapping() == {"new/a_1": "old/a_1", "new/b": "other/b"}
    assert plan.skipped == ("head/k",)
    assert plan.unused_mappings == (r"rename_rules[2] ('new/(.*)', 'never/\\1')",)
    with pytest.raises(UnusedMappingError, match=r"rename_rules\[2\]"):
        plan.raise_for_errors()


def test_rules_with_backreferences_fall_back_to_one_by_one():
    """A rule with a backreference inside its regex still matches as a plain `re.fullmatch` would."""
    info = _info({"dup": (), "single": ()})
    plan = mapping.plan_mapping(info, ["aa", "ab"], rename_rules=[(r"(a)\1", "dup"), (r"a.", "single")])
    assert plan.mapping() == {"aa": "dup", "ab": "single"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"assignment_map": {"old/": "new_var"}}, "a scope .ending in '/'. must map onto a scope"),
        ({"assignment_map": {"a": "s/", "b": "t"}}, "a variable name must map onto a variable name"),
        ({"assignment_map": {"a/": "s/", "b/": "s/"}}, "both map onto scope 's/'"),
        ({"rename_rules": [("(", "x")]}, "does not compile"),
        ({"rename_rules": [("(a)", r"\2")]}, "refers to group 2"),
        ({"rename_rules": [("a", r"\n")]}, "only group references"),
        ({"rename_rules": ["a"]}, r"must be a \(regex, replacement\) pair"),
    ],
)
def test_malformed_maps_and_rules_are_refused(kwargs, message):
    """Malformed assignment_map entries and rename rules raise MappingError naming the entry."""
    with pytest.raises(MappingError, match=message):
        mapping.plan_mapping(_info({"a": ()}), ["t"], **kwargs)


def test_unused_assignment_map_entry_is_an_error_but_extra_keys_are_not(ckpts):
    """An entry that matches no variable is refused; keys the model does not need never are."""
    plan = mapping.plan_mapping(ckpts("adam"), {"w": ((3, 2), "float32")}, assignment_map={"b": "typo"})
    assert plan.unused_mappings == ("assignment_map 'b': 'typo'",)
    assert set(plan.unused_sources) >= {"b", "w/Adam", "beta1_power", "global_step"}
    with pytest.raises(UnusedMappingError, match="'b': 'typo'"):
        plan.raise_for_errors()


def test_unmapped_lists_every_variable_closest_names_and_path(ckpts):
    """One UnmappedVariablesError names every missing variable, the closest checkpoint names and the checkpoint."""
    prefix = ckpts("tf1")
    plan = mapping.plan_mapping(prefix, ["scoped/cc", "zzz", "a"])
    assert [u.target for u in plan.unmapped] == ["scoped/cc", "zzz"]
    with pytest.raises(UnmappedVariablesError) as e:
        plan.raise_for_errors()
    text = str(e.value)
    assert text.startswith(f"{prefix}: 2 variable(s) have no source")
    assert "'scoped/cc'; closest in checkpoint: scoped/c" in text
    assert "'zzz'; nothing similar in checkpoint" in text


def test_mismatch_names_variable_shapes_dtypes_and_key(ckpts):
    """A shape or dtype mismatch is reported with the variable, both shapes and dtypes, and the source key."""
    plan = mapping.plan_mapping(ckpts("adam"), {"w": ((2, 3), "float32"), "b": ((2,), "float64")})
    assert [a.target for a in plan.mismatched] == ["w", "b"]
    with pytest.raises(MismatchError) as e:
        plan.raise_for_errors()
    assert "'w' [2, 3] float32 <- 'w' [3, 2] float32" in str(e.value)
    assert "'b' [2] float64 <- 'b' [2] float32" in str(e.value)


@pytest.mark.keras2
def test_object_based_full_names_and_object_paths(ckpts):
    """Sources may be a recorded full_name or an object path, with or without the VARIABLE_VALUE tail."""
    plan = mapping.plan_mapping(
        ckpts("tf2"),
        ["scoped/c", "x", "y"],
        assignment_map={"variables/0": "x", f"variables/1{VV}": "y"},
    )
    assert plan.mapping() == {
        "scoped/c": f"variables/2{VV}",
        "x": f"variables/0{VV}",
        "y": f"variables/1{VV}",
    }
    keras = mapping.plan_mapping(
        ckpts("keras_functional"), ["k"], assignment_map={"model/layer_with_weights-0/kernel": "k"}
    )
    assert keras.mapping() == {"k": f"model/layer_with_weights-0/kernel{VV}"}


def test_duplicate_full_name_is_ambiguous_and_object_path_resolves(ckpts):
    """`Checkpoint(vars=[a, b])` records 'Variable' twice: the name is refused listing both keys, 'vars/0' works."""
    prefix = ckpts("duplicate_names")
    plan = mapping.plan_mapping(prefix, {"Variable": SCALAR})
    assert plan.ambiguous[0].ambiguous_keys == (f"vars/0{VV}", f"vars/1{VV}")
    with pytest.raises(AmbiguousNameError) as e:
        plan.raise_for_errors()
    assert f"held by vars/0{VV}, vars/1{VV}" in str(e.value)
    assert "assignment_map={'vars/0': 'Variable'}" in str(e.value)
    plan = mapping.plan_mapping(prefix, {"Variable": SCALAR}, assignment_map={"vars/0": "Variable"})
    assert plan.mapping() == {"Variable": f"vars/0{VV}"}


def test_parts_saved_one_by_one_form_their_variable(ckpts):
    """tf2 parts `emb/part_N` sharing full_name 'emb' resolve, in order, to the whole [10, 4] variable."""
    prefix = ckpts("partitioned_tf2")
    plan = mapping.plan_mapping(
        prefix,
        {"emb": ((10, 4), "float32"), "p1": ((3, 4), "float32")},
        assignment_map={"var_list/emb.Spart_1": "p1"},
    )
    emb = plan.assignments[0]
    assert emb.source_keys == tuple(f"var_list/emb.Spart_{i}{VV}" for i in range(3))
    assert emb.source_shape == (10, 4) and emb.part_axis == 0 and emb.shape_ok
    assert plan.mapping()["p1"] == f"var_list/emb.Spart_1{VV}"
    assert plan.ok


def test_parts_along_any_axis_and_parts_of_slots(ckpts):
    """Parts join along the one axis their shapes differ on; equal parts along axis 0 unless the target's
    shape says otherwise; a slot of a part (`emb/part_1/Adam`, recorded `emb/Adam`) is that slot's part."""
    plan = mapping.plan_mapping(ckpts("partitioned_tf2", axis=1), {"emb": ((10, 4), "float32")})
    assert plan.assignments[0].part_axis == 1 and plan.assignments[0].source_shape == (10, 4) and plan.ok
    parts = {f"var_list/emb.Spart_{i}{VV}": ("emb", (10, 2)) for i in range(2)}
    slots = {f"var_list/emb.Spart_{i}.SAdam{VV}": ("emb/Adam", (10, 2)) for i in (1, 0)}
    info = _tf2_info({**parts, **slots})
    split = mapping.plan_mapping(info, {"emb": ((10, 4), "float32"), "emb/Adam": ((10, 4), "float32")})
    assert [(a.part_axis, a.source_shape) for a in split.assignments] == [(1, (10, 4)), (1, (10, 4))]
    assert split.assignments[1].source_keys == (
        f"var_list/emb.Spart_0.SAdam{VV}",
        f"var_list/emb.Spart_1.SAdam{VV}",
    )
    unknown = mapping.plan_mapping(info, ["emb"]).assignments[0]
    assert (unknown.part_axis, unknown.source_shape) == (0, (20, 2))
    assert mapping.key_for_name(info, "emb/Adam") == split.assignments[1].source_keys
    gap = _tf2_info({f"var_list/emb.Spart_{i}{VV}": ("emb", (10, 2)) for i in (0, 2)})
    with pytest.raises(AmbiguousNameError, match="emb.Spart_0"):
        mapping.key_for_name(gap, "emb")


@pytest.mark.keras2
def test_targets_from_checkpoint_skip_bookkeeping(ckpts):
    """Targets read from a tf2 checkpoint leave out slots, save_counter and the graph, and join parts."""
    names = [t.name for t in mapping.targets_from_checkpoint(est_ckpt.read_checkpoint(ckpts("adam_tf2")))]
    # Keras numbers layer names per process (dense, dense_1, ...): count them instead.
    assert sum(n.startswith("dense") for n in names) == 4 and "Adam/iter" in names
    assert len(names) == 9 and "save_counter" not in names
    parts = mapping.targets_from_checkpoint(est_ckpt.read_checkpoint(ckpts("partitioned_tf2")))
    assert sorted(parts) == [
        mapping.Target("dense/kernel", (4, 2), "float32"),
        mapping.Target("emb", (10, 4), "float32"),
    ]


def test_names_to_keys_and_back(ckpts):
    """`key_for_name` resolves names, object paths and parts; `name_for_key` returns the recorded name."""
    dup = ckpts("duplicate_names")
    assert mapping.key_for_name(dup, "vars/1") == (f"vars/1{VV}",)
    with pytest.raises(AmbiguousNameError, match=f"vars/0{VV}, vars/1{VV}"):
        mapping.key_for_name(dup, "Variable")
    with pytest.raises(UnmappedVariablesError, match="closest: Variable"):
        mapping.key_for_name(dup, "Variabel")
    parts = ckpts("partitioned_tf2")
    assert mapping.key_for_name(parts, "emb") == tuple(f"var_list/emb.Spart_{i}{VV}" for i in range(3))
    assert mapping.name_for_key(parts, f"var_list/dense.Skernel{VV}") == "dense/kernel"
    assert mapping.name_for_key(parts, "_CHECKPOINTABLE_OBJECT_GRAPH") is None
    assert mapping.name_for_key(ckpts("tf1"), "scoped/c") == "scoped/c"


def test_plan_json_shape(ckpts):
    """`est-ckpt map --json`'s object has exactly the contract's keys and entry shapes."""
    plan = mapping.plan_mapping(ckpts("adam"), {"w": ((1,), "float32"), "nope": SCALAR})
    out = to_json(plan)
    assert list(out) == ["mapped", "unmapped", "unused_sources", "mismatched"]
    assert out["mapped"] == [{"target": "w", "source_key": "w"}]
    assert out["unmapped"] == ["nope"]
    assert out["mismatched"] == [
        {
            "target": "w",
            "source_key": "w",
            "target_shape": [1],
            "source_shape": [3, 2],
            "target_dtype": "float32",
            "source_dtype": "float32",
        }
    ]
    json.dumps(out)


def test_large_plan_is_correct():
    """A 20,000-variable plan with a scope map and rules maps every variable to the right key."""
    n = 20000
    info = _info({f"old/l{i // 10}/k{i}": (4,) for i in range(n)})
    targets = {
        (f"new/l{i // 10}/k{i}" if i % 2 else f"r/l{i // 10}/k{i}"): ((4,), "float32") for i in range(n)
    }
    plan = mapping.plan_mapping(
        info,
        targets,
        assignment_map={"old/": "new/"},
        rename_rules=[("x(.*)", r"\1"), (r"r/(.*)", r"old/\1")],
    )
    assert len(plan.assignments) == n and plan.unused_mappings == ("rename_rules[0] ('x(.*)', '\\\\1')",)
    assert all(a.source_key == "old/" + a.target.split("/", 1)[1] for a in plan.assignments)


# -- est-ckpt map ----------------------------------------------------------------------------------


def test_cli_map_json_dry_run(ckpts):
    """`est-ckpt map --json` prints the plan of a tf2 source against a tf1 target and exits 0 when it is clean."""
    result = run_cli("map", ckpts("partitioned_tf2"), "--target", ckpts("partitioned"), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["mapped"][0] == {"target": "dense/kernel", "source_key": f"var_list/dense.Skernel{VV}"}
    assert out["unmapped"] == [] and out["mismatched"] == []
    assert out["unused_sources"] == [f"save_counter{VV}"]


def test_cli_map_text_reports_problems_and_exits_1(ckpts):
    """The text dry run shows each target's key and verdict, the unmapped with closest names, and exits 1."""
    result = run_cli(
        "map",
        ckpts("tf1"),
        "--target",
        ckpts("adam"),
        "--assignment_map",
        "a=w",
        "--rename_rule",
        "b=scoped/c",
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "w <- a  [MISMATCH shape [3, 2] vs []]" in lines
    assert "b <- scoped/c  [MISMATCH shape [2] vs []]" in lines
    assert any(line.startswith("unmapped: w/Adam") for line in lines)
    assert lines[-1].endswith("warm_start would refuse this")


def test_cli_map_usage_errors(ckpts):
    """Missing --target or a malformed --assignment_map is a usage error (exit 2)."""
    assert run_cli("map", ckpts("tf1")).returncode == 2
    result = run_cli("map", ckpts("tf1"), "--target", ckpts("tf1"), "--assignment_map", "nodelimiter")
    assert result.returncode == 2 and "SRC=DST" in result.stderr


def test_cli_assignment_map_splits_at_the_last_equals_as_warm_start_map(tmp_path):
    """`--assignment_map a=b=w` reads SRC `a=b` (an object path may hold '='), as `--warm_start_map` does."""
    import tensorflow as tf

    from est_ckpt.tf.flags import parse_map_entry

    src = tf.train.Checkpoint(**{"a=b": tf.Variable([1.0, 2.0])}).write(str(tmp_path / "src" / "ckpt"))
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("w", initializer=[0.0, 0.0])
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            target = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "target" / "ckpt"))
    result = run_cli("map", src, "--target", target, "--assignment_map", "a=b=w", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mapped"] == [{"target": "w", "source_key": f"a=b{VV}"}]
    assert parse_map_entry("a=b=w") == ("a=b", "w")


@pytest.mark.tensorflow
def test_the_tf1_slot_table_is_what_tf1_optimizers_create():
    """`TF1_OPTIMIZERS`, the one table of TF1 slots, names each slot as TF's own optimizer does (centered RMSProp too)."""
    import tensorflow as tf

    from est_ckpt.mapping import optimizer_slots

    tf1 = tf.compat.v1
    make = {
        "Adam": lambda slots: tf1.train.AdamOptimizer(0.1),
        "Adagrad": lambda slots: tf1.train.AdagradOptimizer(0.1),
        "ProximalAdagrad": lambda slots: tf1.train.ProximalAdagradOptimizer(0.1),
        "Ftrl": lambda slots: tf1.train.FtrlOptimizer(0.1),
        "Adadelta": lambda slots: tf1.train.AdadeltaOptimizer(0.1),
        "RMSProp": lambda slots: tf1.train.RMSPropOptimizer(0.1, centered="mg" in slots),
        "Momentum": lambda slots: tf1.train.MomentumOptimizer(0.1, 0.9),
    }
    assert {o.op for o in optimizer_slots.TF1_OPTIMIZERS} == set(make)
    for o in optimizer_slots.TF1_OPTIMIZERS:
        with tf.Graph().as_default():
            w = tf1.get_variable("w", shape=[2], use_resource=True)
            optimizer = make[o.op](o.slots)
            optimizer.minimize(tf.reduce_sum(w * w))
            assert sorted(optimizer.get_slot_names()) == sorted(o.slots), o
            names = {slot: optimizer.get_slot(w, slot).op.name for slot in o.slots}
        assert names == {slot: f"w/{suffix}" for slot, suffix in zip(o.slots, o.suffixes)}, o
        suffixes = set(o.suffixes)
        for slot, suffix, kind in zip(o.slots, o.suffixes, o.kinds):
            assert optimizer_slots.tf1_kind(suffix, suffixes) == kind, (o, suffix)
            assert optimizer_slots.tf1_slot_suffix(slot, set(o.slots), o.op) == suffix, (o, slot)
