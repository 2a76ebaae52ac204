"""Shared pytest fixtures: lazily built, session-cached real TF checkpoints.

Usage in a test::

    def test_something(ckpts):
        prefix = ckpts("tf1")              # checkpoint prefix
        model_dir = ckpts("estimator_tf2") # Estimator model dir
        prefix = ckpts("many_vars", n=50)  # builder kwargs are part of the key

See `tests/fixtures.py` (`FIXTURES`, `FIXTURE_KINDS`, `expected_keys`).

TensorFlow is NOT imported when this module is imported (only when a builder
runs), so tests can check e.g. that `import est_ckpt` works without TF.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from hypothesis import settings

# Deterministic property tests: the same examples on every machine, and no
# deadline (the first example may pay for importing TensorFlow).
settings.register_profile("est_ckpt", deadline=None, derandomize=True, max_examples=200)
settings.load_profile("est_ckpt")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests import fixtures as _fx  # noqa: E402

# In the TF-free environment (`make test`'s core run, numpy 2, no TensorFlow), a test that needs TensorFlow or
# Estimator is skipped, saying so, wherever it asks for them: a test module importing them, a fixture
# building a checkpoint with TensorFlow, `est_ckpt.tf` checking for them. Everything else must pass there.
_NEEDS = {
    "tensorflow": "[estimator] extra: TensorFlow",
    "tensorflow_estimator": "[estimator] extra: tensorflow-estimator",
    "tf_keras": "tf-keras",
}


class _SkipWhereMissing:
    """A meta-path finder turning the import of a missing heavy dependency into a skip of the test asking."""

    def find_spec(self, fullname, path, target=None):
        del path, target
        top = fullname.partition(".")[0]
        if top in _NEEDS and not _INSTALLED[top] and not _asked_by_the_library():
            pytest.skip(f"needs {_NEEDS[top]} (not installed here)", allow_module_level=True)
        return None


_LIBRARY = os.path.join(_ROOT, "est_ckpt") + os.sep


def _asked_by_the_library() -> bool:
    """Whether est_ckpt itself (not a test) imports or looks for the module: then it fails as for users."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<frozen importlib") and "importlib" not in filename:
            return filename.startswith(_LIBRARY)
        frame = frame.f_back
    return False


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


_INSTALLED = {m: _installed(m) for m in _NEEDS}
if not all(_INSTALLED.values()):
    sys.meta_path.insert(0, _SkipWhereMissing())


# What each marker needs, whether this environment has it, and the skip reason where it does not.
_MARKERS = {
    "tensorflow": (_INSTALLED["tensorflow"], f"needs {_NEEDS['tensorflow']} (not installed here)"),
    "estimator": (
        _INSTALLED["tensorflow_estimator"],
        f"needs {_NEEDS['tensorflow_estimator']} (TF <= 2.15; not installed here)",
    ),
    "keras2": (
        _INSTALLED["tensorflow"] and _fx.KERAS_MAJOR == 2,
        "needs tf.keras 2 (TF <= 2.15, or tf-keras): tf.compat.v1.layers, legacy optimizers, Keras 2 layouts",
    ),
    "keras3": (
        _INSTALLED["tensorflow"] and _fx.KERAS_MAJOR >= 3,
        "needs Keras 3 as tf.keras (TF 2.16+)",
    ),
    "without_tensorflow": (
        not _INSTALLED["tensorflow"],
        "checks the TF-free install; TensorFlow is installed here",
    ),
}


class CheckpointCache:
    """Callable building each fixture on first request, then caching it."""

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory
        self._cache = {}

    def __call__(self, name: str, **kwargs) -> str:
        if name not in _fx.FIXTURES:
            raise KeyError(f"unknown checkpoint fixture {name!r}; known: {sorted(_fx.FIXTURES)}")
        need = _fx.FIXTURE_NEEDS.get(name)
        if need and not _MARKERS[need][0]:
            pytest.skip(f"checkpoint fixture {name!r} {_MARKERS[need][1]}")
        key = (name, tuple(sorted(kwargs.items())))
        if key not in self._cache:
            suffix = "".join(f"-{k}{v}" for k, v in key[1])
            directory = self._factory.mktemp(f"ckpt-{name}{suffix}")
            self._cache[key] = _fx.FIXTURES[name](str(directory), **kwargs)
        return self._cache[key]

    def kind(self, name: str) -> str:
        """'prefix' or 'model_dir'."""
        return _fx.FIXTURE_KINDS[name]

    def prefix(self, name: str, **kwargs) -> str:
        """Always a checkpoint prefix (latest ckpt for Estimator model dirs)."""
        path = self(name, **kwargs)
        if _fx.FIXTURE_KINDS[name] == "model_dir":
            import tensorflow as tf

            latest = tf.train.latest_checkpoint(path)
            assert latest, f"no checkpoint in {path}"
            return latest
        return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> CheckpointCache:
    return CheckpointCache(tmp_path_factory)


def _make_named_fixture(fixture_name: str):
    @pytest.fixture(scope="session", name=f"{fixture_name}_ckpt")
    def _named(ckpts):
        return ckpts(fixture_name)

    return _named


# Individual session fixtures: tf1_ckpt, tf2_ckpt, nested_ckpt, ...,
# estimator_tf2_ckpt (a model dir), many_vars_ckpt (n=200).
for _name in _fx.FIXTURES:
    globals()[f"_fixture_{_name}_ckpt"] = _make_named_fixture(_name)
del _name


def pytest_configure(config):
    for line in (
        "tensorflow: needs TensorFlow (the [estimator] extra); skipped without it",
        "estimator: needs tensorflow-estimator (TF <= 2.15); skipped without it",
        "keras2: needs tf.keras 2 (TF <= 2.15 or tf-keras); skipped where tf.keras is Keras 3",
        "keras3: needs Keras 3 as tf.keras (TF 2.16+); skipped elsewhere",
        "without_tensorflow: checks the TF-free install; runs only without TensorFlow",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    del config
    for item in items:
        # A test parametrized over checkpoint fixtures needs what each fixture's builder needs.
        callspec = getattr(item, "callspec", None)
        for value in callspec.params.values() if callspec else ():
            if isinstance(value, str) and value in _fx.FIXTURE_NEEDS:
                item.add_marker(_fx.FIXTURE_NEEDS[value])
        for name, (available, reason) in _MARKERS.items():
            if item.get_closest_marker(name) and not available:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def real_imports():
    """For a test of what users see without TensorFlow: imports fail as they do for users, not as skips."""
    finders = [f for f in sys.meta_path if isinstance(f, _SkipWhereMissing)]
    for finder in finders:
        sys.meta_path.remove(finder)
    yield
    sys.meta_path[:0] = finders
