"""`est-ckpt demo`: the whole migration story, run end to end once as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from est_ckpt.format import checkpoint

pytestmark = [pytest.mark.tensorflow, pytest.mark.estimator]  # runs `est-ckpt demo`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def est_ckpt_command() -> list[str]:
    """The installed console script when there is one (what `make demo` runs), else the module."""
    script = os.path.join(os.path.dirname(sys.executable), "est-ckpt")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "est_ckpt"]


def run_demo_command(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [*est_ckpt_command(), "demo", *args],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of `est-ckpt demo --workdir DIR`: (workdir, stdout lines, seconds)."""
    workdir = str(tmp_path_factory.mktemp("demo") / "work")
    proc, seconds = run_demo_command(f"--workdir={workdir}")
    print(f"est-ckpt demo took {seconds:.1f}s wall")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    return workdir, proc.stdout.splitlines(), seconds


def table(lines: list[str]) -> dict[str, tuple[str, str, int]]:
    """The final table: `{what: (where, format, variables)}`."""
    start = next(i for i, line in enumerate(lines) if line.startswith("  WHAT "))
    rows = {}
    for line in lines[start + 1 :]:
        m = re.match(r"^  (\S.*?)\s{2,}(\S+)\s+(tf[12])\s+(\d+)$", line)
        if not m:
            break
        rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)))
    return rows


def metrics(lines: list[str]) -> list[tuple[str, int, float, float]]:
    """The evaluation table of step 4: (model, step, accuracy, loss)."""
    out = []
    for line in lines:
        m = re.match(r"^\s+(\S.*?)\s+(\d+)\s+(\d\.\d{3})\s+(\d+\.\d{4})$", line)
        if m:
            out.append((m.group(1), int(m.group(2)), float(m.group(3)), float(m.group(4))))
    return out


def test_demo_tells_the_story_in_order(demo):
    """Progress shows the six steps in order, each with its elapsed time, and the workdir first."""
    workdir, lines, seconds = demo
    assert lines[0] == f"est-ckpt demo: writing into {workdir}"
    steps = [int(m.group(1)) for line in lines for m in [re.match(r"^\[(\d)/6\] .*\(\d+\.\ds\)$", line)] if m]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert lines[-4].startswith("Done in ")
    # Wall time is reported, not asserted: a busy machine must not fail the suite.
    print(f"demo: {seconds:.1f}s wall (goal < 60 s on two idle cores)")


def test_demo_table_matches_the_disk(demo):
    """The table names each checkpoint written, its format and variable count, and each matches the files."""
    workdir, lines, _ = demo
    rows = table(lines)
    assert {what: (where, fmt) for what, (where, fmt, _) in rows.items()} == {
        "legacy model": ("legacy/model.ckpt-100", "tf1"),
        "migrated model": ("migrated/model.ckpt-20", "tf2"),
        "migrated, TF1 copy": ("migrated/tf1/model.ckpt-20", "tf1"),
        "cold-start model": ("cold/model.ckpt-20", "tf2"),
        "legacy converted to TF2": ("converted/model.ckpt-100", "tf2"),
        "canned, migrated in place": ("canned/model.ckpt-30", "tf2"),
    }
    for where, fmt, count in rows.values():
        info = checkpoint.read_checkpoint(os.path.join(workdir, where))
        assert (info.format, len(info.variables)) == (fmt, count)
    assert checkpoint.latest_in_directory(os.path.join(workdir, "legacy")).endswith("model.ckpt-100")
    assert any(
        line.startswith(
            "Warm start: 4 of 4 trainable variables mapped from legacy/ (values checked at step 0)"
        )
        for line in lines
    )
    assert "      diff legacy vs converted: equal" in lines
    assert "      diff migrated vs its TF1 copy: equal" in lines


def test_warm_started_model_starts_at_the_legacy_quality(demo):
    """At step 0 the migrated model scores what the legacy model scores; a cold start scores far lower."""
    _, lines, _ = demo
    scores = {(model, step): (acc, loss) for model, step, acc, loss in metrics(lines)}
    legacy = scores[("legacy DNNClassifier", 100)]
    warm0 = scores[("migrated, warm-started", 0)]
    cold0 = scores[("cold start (no warm start)", 0)]
    assert warm0[0] == legacy[0]
    assert warm0[1] == pytest.approx(legacy[1], abs=2e-4)
    assert legacy[0] > 0.9
    assert cold0[0] < legacy[0] - 0.2
    assert scores[("migrated, warm-started", 20)][0] > 0.9


def test_demo_files_read_back_through_tensorflow(demo):
    """TF's own reader finds the legacy weights under the new names in the TF1 copy, and the converted values."""
    workdir, _, _ = demo
    import tensorflow as tf

    legacy = tf.train.load_checkpoint(os.path.join(workdir, "legacy"))
    converted = tf.train.load_checkpoint(os.path.join(workdir, "converted"))
    names = legacy.get_variable_to_shape_map()
    info = checkpoint.read_checkpoint(os.path.join(workdir, "converted"))
    for name in names:
        np.testing.assert_array_equal(
            converted.get_tensor(info.keys_for_name(name)[0]), legacy.get_tensor(name)
        )
    migrated_tf1 = tf.train.load_checkpoint(os.path.join(workdir, "migrated", "tf1"))
    assert migrated_tf1.get_tensor("global_step") == 20
    assert (
        list(migrated_tf1.get_tensor("migrated/classifier/hidden/kernel").shape)
        == names["dnn/hiddenlayer_0/kernel"]
    )
    assert "dnn/hiddenlayer_0/kernel" not in migrated_tf1.get_variable_to_shape_map()


def test_demo_migrates_a_canned_estimator_in_place(demo):
    """Step 6: a LinearClassifier's name-based dir continues through with_tf2_checkpoints, object-based, step on."""
    workdir, lines, _ = demo
    import tensorflow as tf

    canned = os.path.join(workdir, "canned")
    after = checkpoint.read_checkpoint(canned)
    assert after.prefix.endswith("model.ckpt-30") and after.format == "tf2"
    reader = tf.train.load_checkpoint(canned)
    assert reader.get_tensor(after.keys_for_name("global_step")[0]) == 30
    assert list(reader.get_tensor(after.keys_for_name("linear/linear_model/x/weights")[0]).shape) == [4, 3]
    printed = [
        m.groups()
        for line in lines
        for m in [re.match(r"^\s+canned/(model\.ckpt-\d+)\s+(tf[12])  accuracy (\d\.\d{3})  (.*)$", line)]
        if m
    ]
    # As the plain LinearClassifier wrote step 20: name-based.
    assert [(prefix, fmt) for prefix, fmt, _, _ in printed] == [
        ("model.ckpt-20", "tf1"),
        ("model.ckpt-20", "tf1"),
        ("model.ckpt-30", "tf2"),
    ]
    accuracy = {label: float(acc) for _, _, acc, label in printed}
    assert list(accuracy) == [
        "plain LinearClassifier",
        "with_tf2_checkpoints, restored",
        "with_tf2_checkpoints, trained on",
    ]
    assert accuracy["plain LinearClassifier"] == accuracy["with_tf2_checkpoints, restored"]
    assert any("the global step went on from 20 to 30 in the same directory" in line for line in lines)


def test_demo_never_overwrites(tmp_path):
    """A workdir already holding the demo's directories is refused (exit 1, naming them) and left as it was."""
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "keep.txt").write_text("mine")
    proc, _ = run_demo_command(f"--workdir={tmp_path}")
    assert proc.returncode == 1
    assert f"Destination {tmp_path}/legacy already exists" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["legacy"]
    assert (tmp_path / "legacy" / "keep.txt").read_text() == "mine"


def test_demo_refuses_positional_arguments():
    """`est-ckpt demo extra` is a usage error (exit 2)."""
    proc, _ = run_demo_command("extra")
    assert proc.returncode == 2
    assert "demo takes no positional arguments" in proc.stderr
