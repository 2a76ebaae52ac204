"""The package layout is the architecture: each layer imports only the layers below it.

format (`est_ckpt/format/`: keys, wire, table, bundle, object graph, state file)
-> mapping (`est_ckpt/mapping/`) -> tools (`est_ckpt/tools/`: convert, diff,
verify) and the TensorFlow layer (`est_ckpt/tf/`) -> commands
(`est_ckpt/commands/`). `errors` and `fileio` are shared by all. Only the
TensorFlow layer and the examples import TensorFlow (and `fileio`, lazily, for
`scheme://` paths). No module uses another module's private names.
"""

from __future__ import annotations

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "est_ckpt")
TF_MODULES = ("tensorflow", "tensorflow_estimator", "tensorflow_io", "keras", "tf_keras")
# What each layer may import from est_ckpt (besides itself).
SHARED = {"est_ckpt", "est_ckpt.errors", "est_ckpt.fileio", "est_ckpt.version"}
ALLOWED = {
    "shared": SHARED,
    "fileio": SHARED,
    "format": SHARED,
    "mapping": SHARED | {"format"},
    "tools": SHARED | {"format", "mapping"},
    "tf": SHARED | {"format", "mapping", "tools"},
    "commands": SHARED | {"format", "mapping", "tools", "tf", "examples"},
    "examples": SHARED | {"format", "mapping", "tools", "tf"},
}
# `fileio` reaches `scheme://` paths through `tf.io.gfile`, importing TensorFlow only then.
TF_ALLOWED_IN = {("fileio", os.path.join("fileio", "remote.py"))}


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, PACKAGE)
                layer = rel.split(os.sep)[0] if os.sep in rel else "shared"
                with open(path) as f:
                    yield rel, layer, ast.parse(f.read(), rel)


def _module_name(rel: str) -> str:
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["est_ckpt", *parts])


def _imports(tree: ast.AST):
    """(imported module, names) for every import statement, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, tuple(a.name for a in node.names)


def _layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return module if module in SHARED else "est_ckpt." + parts[1]


def _allowed(layer: str, target: str) -> bool:
    other = _layer_of(target) if target != "est_ckpt" else "est_ckpt"
    # `fileio` is shared: a folder because its remote half is a module of its own.
    return other in (layer, *ALLOWED[layer]) or target in ALLOWED[layer] or other == "fileio"


MODULES = list(_modules())


def test_the_folders_are_the_layers():
    """Every module lives in a layer folder, or is one of the few shared modules."""
    top = sorted(rel for rel, layer, _ in MODULES if layer == "shared")
    assert top == ["__init__.py", "__main__.py", "errors.py", "version.py"]
    assert {layer for _, layer, _ in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("rel,layer,tree", MODULES, ids=[m[0] for m in MODULES])
def test_imports_go_down_the_layers(rel, layer, tree):
    """A module imports est_ckpt only from its own layer or the layers below it."""
    bad = []
    for module, names in _imports(tree):
        if not module.startswith("est_ckpt"):
            continue
        targets = [f"{module}.{n}" for n in names] if module in ("est_ckpt", "est_ckpt.format") else [module]
        for target in targets:
            if layer == "shared" and rel in ("__init__.py", "__main__.py"):
                continue  # the public surface re-exports every layer (lazily); `python -m` runs the CLI
            if not _allowed(layer, target):
                bad.append(target)
    assert not bad, f"est_ckpt/{rel} ({layer} layer) imports {bad}"


@pytest.mark.parametrize("rel,layer,tree", MODULES, ids=[m[0] for m in MODULES])
def test_only_the_tensorflow_layer_imports_tensorflow(rel, layer, tree):
    """TensorFlow is imported only in `est_ckpt/tf/` and the examples (and by `fileio` for `scheme://`)."""
    tf_imports = [m for m, _ in _imports(tree) if m.split(".")[0] in TF_MODULES]
    if layer in ("tf", "examples") or (layer, rel) in TF_ALLOWED_IN:
        return
    assert not tf_imports, f"est_ckpt/{rel} imports {tf_imports}"


@pytest.mark.parametrize("rel,layer,tree", MODULES, ids=[m[0] for m in MODULES])
def test_no_module_uses_another_modules_private_names(rel, layer, tree):
    """`from est_ckpt.x import _y` and `x._y` on an imported est_ckpt module never appear."""
    own = _module_name(rel)
    imported = {}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("est_ckpt"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != own:
                    bad.append(target)
                imported[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("est_ckpt"):
                    imported[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            bad.append(f"{imported[node.value.id]}.{node.attr}")
    assert not bad, f"est_ckpt/{rel} uses private names of other modules: {sorted(set(bad))}"


@pytest.mark.parametrize("rel,layer,tree", MODULES, ids=[m[0] for m in MODULES])
def test_no_module_is_over_400_lines(rel, layer, tree):
    """One concept per module: none grows past about 400 lines."""
    with open(os.path.join(PACKAGE, rel)) as f:
        lines = sum(1 for _ in f)
    assert lines <= 420, f"est_ckpt/{rel} has {lines} lines"


def _edges() -> dict[str, set]:
    """`{module: {est_ckpt modules it imports}}`, imports at any depth, `from est_ckpt.x import m` as `x.m`."""
    names = {_module_name(rel) for rel, _, _ in MODULES}
    edges: dict[str, set] = {}
    for rel, _, tree in MODULES:
        out = edges.setdefault(_module_name(rel), set())
        for module, imported in _imports(tree):
            if not module.startswith("est_ckpt"):
                continue
            subs = {f"{module}.{n}" for n in imported if f"{module}.{n}" in names}
            out |= subs or {module}
    return edges


def test_no_module_imports_the_package_facade():
    """Inside the package, modules import what they use from where it lives, never `est_ckpt`'s facade."""
    # The examples (the demo, the launch script) are written as a user writes code: through the facade.
    offenders = sorted(
        m
        for m, targets in _edges().items()
        if m != "est_ckpt" and not m.startswith("est_ckpt.examples") and "est_ckpt" in targets
    )
    assert offenders == [], offenders


def test_no_import_circles():
    """The module import graph (imports at any depth, lazy ones too) has no circle, facade aside."""
    edges = {m: {t for t in targets if t != "est_ckpt"} for m, targets in _edges().items() if m != "est_ckpt"}
    state: dict[str, int] = {}
    circles = []

    def visit(module, path):
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            # A package's __init__ is imported with its modules: an edge into one's own package is no circle.
            if module.startswith(target + "."):
                continue
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target] if target in path else [module, target])
            elif not state.get(target):
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if not state.get(module):
            visit(module, [module])
    assert circles == [], circles


def test_only_the_named_fallback_reads_the_call_stack():
    """Stack frames are read in one place, `est_ckpt/tf/estimator_stack.py` (see its docstring)."""
    readers = []
    for rel, _, tree in MODULES:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in (
                "_getframe",
                "f_back",
                "currentframe",
                "stack",
            ):
                if node.attr != "stack" or getattr(node.value, "id", "") == "inspect":
                    readers.append(rel)
    assert sorted(set(readers)) == [os.path.join("tf", "estimator_stack.py")], readers
