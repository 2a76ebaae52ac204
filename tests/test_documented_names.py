"""Every module path and name the docs or an issue ever documented keeps working (issue 20, regression 1).

The package moved into layer folders; each old path (`est_ckpt.flags`, `est_ckpt.keys`, ...) imports as
the very module it moved to, and every dotted `est_ckpt.` name in README.md, BUILD.md and docs/ resolves.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

import pytest

import est_ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "BUILD.md"] + [
    os.path.join("docs", n) for n in sorted(os.listdir(os.path.join(ROOT, "docs"))) if n.endswith(".md")
]
DOTTED = re.compile(r"est_ckpt(?:\.[A-Za-z_][A-Za-z0-9_]*)+")

# Module paths from before the layer folders (the README and issues 1-19 cite some of them), and where
# each lives now.
MOVED = {
    "est_ckpt.tools.onto_plan": "est_ckpt.tools.onto.plan",
    "est_ckpt.tools.onto_steps": "est_ckpt.tools.onto.steps",
    "est_ckpt.tools.onto_momentum": "est_ckpt.tools.onto.momentum",
    "est_ckpt.flags": "est_ckpt.tf.flags",
    "est_ckpt.scaffold": "est_ckpt.tf.scaffold",
    "est_ckpt.warm_starting": "est_ckpt.tf.warm_starting",
    "est_ckpt._savers": "est_ckpt.tf.savers",
    "est_ckpt._tf": "est_ckpt.tf.runtime",
    "est_ckpt.keys": "est_ckpt.format.keys",
    "est_ckpt.bundle": "est_ckpt.format.bundle",
    "est_ckpt.checkpoint": "est_ckpt.format.checkpoint",
    "est_ckpt._wire": "est_ckpt.format.wire",
    "est_ckpt.convert": "est_ckpt.tools.convert",
    "est_ckpt.diff": "est_ckpt.tools.diff",
    "est_ckpt.verify": "est_ckpt.tools.verify",
    "est_ckpt.cli": "est_ckpt.commands.main",
    "est_ckpt.demo": "est_ckpt.examples.demo",
}
# Names the issues and earlier READMEs documented, beyond those in today's docs.
HISTORIC = [
    "est_ckpt.flags.define_flags",
    "est_ckpt.flags.estimator_from_flags",
    "est_ckpt.flags.scaffold_from_flags",
    "est_ckpt.flags.warm_start_from_flags",
    "est_ckpt.flags.validate_paths",
    "est_ckpt.flags.write_flags_file",
    "est_ckpt._tf.estimator",
    "est_ckpt.keys.escape",
    "est_ckpt.examples.classifier",
    "est_ckpt.errors.DestinationExistsError",
    "est_ckpt.errors.CheckpointNotFoundError",
    "est_ckpt.errors.CorruptCheckpointError",
]


def _documented() -> list[str]:
    names = set(HISTORIC) | set(MOVED) | {f"est_ckpt.{n}" for n in est_ckpt.__all__}
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            names.update(DOTTED.findall(f.read()))
    return sorted(names)


# Resolved in a fresh process: some documented modules define absl flags when imported (the example launch
# script marks `--model_dir` required), which must not leak into this test process's global FLAGS.
_RESOLVE = r"""
import importlib, json, sys
out = {}
for dotted in json.loads(sys.argv[1]):
    parts = dotted.split(".")
    try:
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            try:
                value = importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name and module.startswith(e.name) and e.name.startswith("est_ckpt"):
                    continue
                raise
            for attr in parts[cut:]:
                value = getattr(value, attr)
            out[dotted] = None
            break
        else:
            out[dotted] = "no module of it imports"
    except Exception as e:
        out[dotted] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def resolved() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _RESOLVE, json.dumps(_documented())],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("dotted", _documented())
def test_documented_name_resolves(dotted, resolved):
    """Each documented `est_ckpt.` name imports and resolves (in a fresh process)."""
    if resolved[dotted] is not None and "MissingDependencyError" in resolved[dotted]:
        pytest.skip(resolved[dotted])  # the TF-free environment: it says what to install
    assert resolved[dotted] is None, resolved[dotted]


@pytest.mark.parametrize(
    "old,new",
    [
        # What moved into the TensorFlow layer imports only where TensorFlow is.
        pytest.param(old, new, marks=[pytest.mark.tensorflow] if new.startswith("est_ckpt.tf.") else [])
        for old, new in sorted(MOVED.items())
    ],
)
def test_a_moved_module_imports_as_itself(old, new):
    """`import <old path>` gives the very module that moved, so its state (absl flags) is shared."""
    assert importlib.import_module(old) is importlib.import_module(new)
    parent, _, child = old.rpartition(".")
    assert getattr(importlib.import_module(parent), child) is importlib.import_module(new)


@pytest.mark.tensorflow
def test_the_flags_spellings_of_the_docs_in_a_fresh_process():
    """`import est_ckpt.flags`, `from est_ckpt.flags import ...` and `from est_ckpt import flags` agree."""
    code = (
        "import est_ckpt.flags\n"
        "from est_ckpt.flags import define_flags, estimator_from_flags\n"
        "from est_ckpt import flags\n"
        "import est_ckpt.tf.flags as real\n"
        "assert est_ckpt.flags is flags is real and define_flags is real.define_flags\n"
        "import est_ckpt\n"
        "assert callable(est_ckpt.warm_start)  # the function, not the old module of that name\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
