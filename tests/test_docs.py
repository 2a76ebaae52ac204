"""Every code block of README.md and docs/*.md runs, as a reader would run it.

A page's blocks run in order, in one fresh process, in a scratch directory that
holds what the pages refer to (`legacy_model_dir/`: a name-based model dir of a
`dense` layer and its `global_step`, as a TF1 Estimator leaves it;
`configs/` as in the repository):

- ```python: executed (one namespace per page, so a block may use the previous ones').
- ```sh: each line is run: `est-ckpt ...` (exit 0, unless the line ends in `# exit N`),
  `python ...` and `cat`/`ls`; `pip install 'est-ckpt[X]'` must name an extra of
  pyproject.toml and `make T` a target of the Makefile (neither is run: no network,
  no second venv inside the suite).
- ```text: output and listings, not code; nothing runs.

`<!-- needs: estimator -->` (or `keras2`, `keras3`, `tensorflow`) before a block skips it, saying so, where
that is missing; a block after it that uses its results must carry the same need.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.cli import ROOT, cli_env
from tests.fixtures import HAS_ESTIMATOR, KERAS_MAJOR

PAGES = ["README.md"] + sorted(
    os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md")
)
_BLOCK = re.compile(r"(?:<!--\s*needs:\s*([\w, ]+?)\s*-->\s*\n)?^```(\w*)\n(.*?)^```", re.M | re.S)
_LANGUAGES = {"python", "sh", "text"}


def _has(need: str) -> bool:
    import importlib.util

    tensorflow = importlib.util.find_spec("tensorflow") is not None
    return {
        "tensorflow": tensorflow,
        "estimator": tensorflow and HAS_ESTIMATOR,
        "keras2": tensorflow and KERAS_MAJOR == 2,
        "keras3": tensorflow and KERAS_MAJOR == 3,
    }[need]


def blocks(page: str) -> list[tuple[set, str, str]]:
    """`[(needs, language, code)]` of a page, in order."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    out = []
    for match in _BLOCK.finditer(text):
        needs = {n.strip() for n in (match.group(1) or "").split(",") if n.strip()}
        out.append((needs, match.group(2), match.group(3)))
    return out


def _extras() -> set:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+)\s*=", section, re.M))


def _make_targets() -> set:
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        return set(re.findall(r"^([\w-]+):", f.read(), re.M))


def _shell_line(line: str) -> str:
    """The Python statement that runs one line of a ```sh block, or '' for a line checked here."""
    line, _, comment = line.partition("  #")
    expected = int(m.group(1)) if (m := re.search(r"exit (\d+)", comment)) else 0
    words = shlex.split(line)
    if words[:2] == ["pip", "install"]:
        for word in words[2:]:
            if word.startswith("est-ckpt["):
                assert set(word[len("est-ckpt[") : -1].split(",")) <= _extras(), line
        return ""
    if words[0] == "make":
        assert set(w for w in words[1:] if "=" not in w) <= _make_targets(), line
        return ""
    if words[0] == "est-ckpt":
        words = [sys.executable, "-m", "est_ckpt", *words[1:]]
    elif words[0] in ("python", "python3"):
        words = [sys.executable, *words[1:]]
    elif words[0] not in ("cat", "ls"):
        raise AssertionError(f"a ```sh line the docs test cannot run: {line!r}")
    return f"_sh({words!r}, {expected}, {line!r})\n"


_PRELUDE = """
import os, subprocess, sys
def _sh(argv, expected, line):
    proc = subprocess.run(argv, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    assert proc.returncode == expected, f"{line}: exit {proc.returncode}, not {expected}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
"""


def _legacy_model_dir(path: str) -> None:
    """A TF1 Estimator's model dir, in small: `dense/kernel` [2, 1], `dense/bias` [1], `global_step` 100."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        tf1.get_variable("dense/kernel", initializer=[[0.5], [-1.0]])
        tf1.get_variable("dense/bias", initializer=[0.25])
        step = tf1.train.get_or_create_global_step()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(step.assign(100))
            tf1.train.Saver().save(sess, os.path.join(path, "model.ckpt"), global_step=100)


@pytest.mark.tensorflow
@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_runs(page, tmp_path):
    program, skipped = [_PRELUDE], []
    for needs, language, code in blocks(page):
        assert language in _LANGUAGES, (
            f"{page}: a ```{language or '(no language)'} block; use python, sh or text"
        )
        missing = sorted(n for n in needs if not _has(n))
        if missing or language == "text":
            skipped += missing
            continue
        if language == "python":
            program.append(code)
        else:
            program += [_shell_line(line) for line in code.splitlines() if line.strip()]
    _legacy_model_dir(str(tmp_path / "legacy_model_dir"))
    shutil.copytree(os.path.join(ROOT, "configs"), tmp_path / "configs")
    script = tmp_path / "page.py"
    script.write_text("\n".join(textwrap.dedent(p) for p in program))
    env = cli_env({"PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, f"{page}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    if skipped:
        pytest.skip(f"{page}: blocks needing {', '.join(sorted(set(skipped)))} were not run here")


def test_the_docs_have_runnable_blocks_only():
    """Every block is python, sh or text, and the harness finds blocks in every page with code."""
    for page in PAGES:
        for _, language, _ in blocks(page):
            assert language in _LANGUAGES, (page, language)
    assert any(language == "python" for _, language, _ in blocks("README.md"))


def test_every_relative_link_resolves():
    """Links between the pages (and to files of the repository) name files that exist."""
    for page in PAGES + ["BUILD.md"]:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target))
            assert os.path.exists(path), f"{page}: link to {target!r}, which does not exist"
