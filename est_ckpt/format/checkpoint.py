"""What a checkpoint holds: its tensors, its format and, for TF2, its object graph.

`resolve_checkpoint` turns a model directory, prefix or file path into a
prefix; `read_checkpoint` reads the index and the object graph without
TensorFlow and returns a `CheckpointInfo`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Optional

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError, EstCkptError, WireError
from est_ckpt.format import bundle, dtypes, keras_file, keys, reader
from est_ckpt.format.object_graph import ObjectGraph, parse_object_graph
from est_ckpt.format.problems import Problems, report
from est_ckpt.format.state_file import STATE_FILENAME, read_state_file
from est_ckpt.format.tensors import decode_tensor, read_entry_bytes, read_tensor

_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STEP = re.compile(r"-(\d+)$")


# -- what a checkpoint holds -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SlotInfo:
    """Where a slot variable belongs: its variable's path, its optimizer's path, its name."""

    variable_path: str
    optimizer_path: str
    slot_name: str


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint.

    Attributes:
      key: the key in the index.
      dtype: TF's dtype name (`float32`, `bfloat16`, `string`, ...).
      shape: the full shape (of the whole variable, for a partitioned one).
      name: the variable's TF1 name: the key for tf1, the `full_name` recorded
        in the object graph for tf2 (None where there is none).
      object_path: for tf2, the escaped object path (the key without
        `/.ATTRIBUTES/<attr>`).
      slices: for a partitioned variable, each stored slice as `(start, length)`
        per dimension (`length` -1 is the full extent).
      slot: for a slot variable of tf2, where it belongs.
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    name: Optional[str] = None
    object_path: Optional[str] = None
    slices: tuple[tuple[tuple[int, int], ...], ...] = ()
    slot: Optional[SlotInfo] = None


@dataclasses.dataclass
class CheckpointInfo:
    """What a checkpoint holds.

    Attributes:
      prefix: the checkpoint prefix (a Keras file's path).
      format: `"tf1"` (name-based), `"tf2"` (object-based: it has `_CHECKPOINTABLE_OBJECT_GRAPH`) or
        `"keras"` (a Keras 3 `.weights.h5` or `.keras` file: keys are its datasets, names Keras's).
      tensors: every tensor by key, in key order.
      object_graph: the decoded object graph (tf2 only).
      duplicate_names: every name held by more than one key, with those keys.
    """

    prefix: str
    format: str
    tensors: dict[str, TensorInfo]
    object_graph: Optional[ObjectGraph]
    duplicate_names: dict[str, list[str]]
    bundle: bundle.Bundle = dataclasses.field(repr=False)
    keras: Optional[keras_file.KerasFile] = dataclasses.field(default=None, repr=False)

    @property
    def unnamed(self) -> tuple[str, ...]:
        """For a Keras file, why some variables go by their keys (Keras's names for them not being known)."""
        return self.keras.unnamed if self.keras is not None else ()

    @property
    def variables(self) -> dict[str, TensorInfo]:
        """Every tensor but the object graph."""
        return {k: t for k, t in self.tensors.items() if k != keys.OBJECT_GRAPH_KEY}

    def keys_for_name(self, name: str) -> list[str]:
        """Every key whose variable has TF1 name `name`."""
        return [k for k, t in self.tensors.items() if t.name == name]

    def read_tensor(self, key: str):
        """Returns the value of `key` as a numpy array, read without TensorFlow."""
        if key not in self.bundle.entries:
            raise KeyError(f"'{key}' is not a key of checkpoint '{self.prefix}'.")
        return read_tensor(self.bundle, key)


def read_checkpoint(path: str) -> CheckpointInfo:
    """Reads what the checkpoint at `path` holds, without TensorFlow.

    Args:
      path: a model directory, a checkpoint prefix, or its `.index` / `.data-*` file; or a Keras 3
        `.weights.h5` / `.keras` file (`format.keras_file`, with h5py).

    Returns:
      The checkpoint's `CheckpointInfo`.

    Raises:
      CheckpointNotFoundError: no checkpoint is at `path`, or a data shard is missing.
      CorruptCheckpointError: the index, a shard's size or the object graph is damaged.
      MissingDependencyError: a Keras file without h5py installed.
    """
    if keras_file.is_keras_file(path) and fileio.exists(path) and not fileio.isdir(path):
        return info_from_keras_file(keras_file.read_keras_file(path))
    prefix = resolve_checkpoint(path)
    return info_from_bundle(reader.read_bundle(prefix))


def info_from_keras_file(k: keras_file.KerasFile) -> CheckpointInfo:
    """What a Keras 3 file holds, as a `CheckpointInfo` of format `"keras"`."""
    tensors = {
        key: TensorInfo(
            key=key,
            dtype=d.dtype,
            shape=d.shape,
            name=d.name,
            slot=None if d.slot_of is None else SlotInfo(d.slot_of, "optimizer", d.slot_name or ""),
        )
        for key, d in k.datasets.items()
    }
    return CheckpointInfo(k.path, "keras", tensors, None, _duplicate_names(tensors), k.bundle, k)


def read_object_graph(b: bundle.Bundle, *, problems: Optional[Problems] = None) -> Optional[ObjectGraph]:
    """Reads and decodes the object graph of `b`; None if it has none.

    With `problems` (a checked read), a bad graph is reported and None
    returned; its entry's data is read only if the index did not mark it
    damaged, and a failure to read it is left to the check of that data.

    Raises:
      CorruptCheckpointError: the graph is not a scalar string, or does not
        decode (only without `problems`).
    """
    entry = b.entries.get(keys.OBJECT_GRAPH_KEY)
    if entry is None:
        return None
    index = bundle.index_path(b.prefix)
    if entry.dtype != dtypes.DT_STRING or entry.shape != () or entry.slices:
        return report(problems, f"{index}: '{keys.OBJECT_GRAPH_KEY}' is not a scalar string")
    if problems is None:
        raw = decode_tensor(entry, read_entry_bytes(b, entry), f"{b.prefix}: ")
    elif keys.OBJECT_GRAPH_KEY.encode() in b.damaged:
        return None  # Its entry is bad, and reported: never read what it declares.
    else:
        try:
            raw = decode_tensor(entry, read_entry_bytes(b, entry))
        except (CorruptCheckpointError, OSError):
            return None
    try:
        return parse_object_graph(raw.item())
    except WireError as e:
        return report(problems, f"{index}: the object graph ('{keys.OBJECT_GRAPH_KEY}') does not decode: {e}")


def info_from_bundle(b: bundle.Bundle) -> CheckpointInfo:
    """What the checked bundle `b` holds, its object graph decoded."""
    graph = read_object_graph(b)
    attrs = _attributes_by_key(graph) if graph is not None else {}
    tensors: dict[str, TensorInfo] = {}
    for key, entry in b.entries.items():
        if graph is None:
            name, path, slot = key, None, None
        elif key in attrs:
            name, path, slot = attrs[key]
            name = name or None
        else:
            name, path, slot = None, None, None
        tensors[key] = TensorInfo(
            key=key,
            dtype=entry.dtype_name,
            shape=entry.shape,
            name=None if key == keys.OBJECT_GRAPH_KEY else name,
            object_path=path,
            slices=entry.slices,
            slot=slot,
        )
    kind = "tf2" if graph is not None else "tf1"
    return CheckpointInfo(b.prefix, kind, tensors, graph, _duplicate_names(tensors), b)


def _duplicate_names(tensors: dict[str, TensorInfo]) -> dict[str, list[str]]:
    """Every name held by more than one key, with those keys."""
    by_name: dict[str, list[str]] = {}
    for key, t in tensors.items():
        if t.name is not None:
            by_name.setdefault(t.name, []).append(key)
    return {n: ks for n, ks in by_name.items() if len(ks) > 1}


def _attributes_by_key(graph: ObjectGraph) -> dict[str, tuple[str, str, Optional[SlotInfo]]]:
    paths = graph.paths()
    slot_of: dict[int, SlotInfo] = {}
    for node_id, node in enumerate(graph.nodes):
        for slot in node.slot_variables:
            if node_id in paths and slot.original_variable_node_id in paths:
                slot_of[slot.slot_variable_node_id] = SlotInfo(
                    paths[slot.original_variable_node_id], paths[node_id], slot.slot_name
                )
    out = {}
    for node_id, node in enumerate(graph.nodes):
        for attr in node.attributes:
            if not attr.checkpoint_key:
                continue
            path = paths.get(node_id)
            if path is None:
                parsed = keys.parse_key(attr.checkpoint_key)
                path = parsed.path if parsed else None
            out[attr.checkpoint_key] = (attr.full_name, path, slot_of.get(node_id))
    return out


# -- resolving a path -------------------------------------------------------------------


def _is_complete(prefix: str) -> bool:
    try:
        reader.read_bundle(prefix)
        return True
    except (CheckpointNotFoundError, CorruptCheckpointError, OSError):
        return False


def step_of(prefix: str) -> Optional[int]:
    """The global step a prefix names (`model.ckpt-100` -> 100), or None for a prefix without one.

    The one parser of `-<step>` suffixes: what `Saver.save(..., global_step=)` and
    `CheckpointManager` append.
    """
    m = _STEP.search(prefix)
    return int(m.group(1)) if m else None


def _step_or_minus_one(prefix: str) -> int:
    step = step_of(prefix)
    return -1 if step is None else step


def prefixes_on_disk(directory: str) -> list[str]:
    """Every prefix with an `.index` in `directory` (temporary ones aside), newest first.

    Newest is the highest `-<step>` suffix, then the latest `.index` mtime.
    """
    candidates = [
        fileio.join(directory, name[: -len(".index")])
        for name in fileio.listdir(directory)
        if name.endswith(".index") and ".tmp" not in name
    ]
    candidates.sort(key=lambda p: (_step_or_minus_one(p), fileio.mtime(bundle.index_path(p))), reverse=True)
    return candidates


def latest_in_directory(directory: str) -> Optional[str]:
    """The latest prefix of the state file if complete, else the newest complete one on disk."""
    named = read_state_file(directory)
    if named and fileio.exists(bundle.index_path(named[-1])):
        return named[-1]
    for prefix in prefixes_on_disk(directory):
        if _is_complete(prefix):
            return prefix
    return None


def resolve_checkpoint(path: str) -> str:
    """Returns the checkpoint prefix that `path` names.

    Args:
      path: a model directory (the latest entry of its `checkpoint` state file;
        if that file is missing or stale, the newest complete prefix on disk), a
        prefix, or a path to its `.index` or `.data-*` file. `gs://` and other
        `scheme://` paths go through `tf.io.gfile`.

    Raises:
      CheckpointNotFoundError: nothing at `path`, or a directory without a checkpoint.
      CorruptCheckpointError: `path` is a file that is not part of a checkpoint.
    """
    path = str(path)
    if path.endswith(".index"):
        candidate = path[: -len(".index")]
    else:
        candidate = _DATA_SUFFIX.sub("", path)
    if candidate != path and fileio.exists(bundle.index_path(candidate)):
        return candidate
    if fileio.exists(bundle.index_path(path)):
        return path
    if fileio.isdir(path):
        saved_model = saved_model_variables(path)
        if saved_model is not None:
            return saved_model
        latest = latest_in_directory(path)
        if latest is None:
            raise CheckpointNotFoundError(
                f"{path}: directory holds no checkpoint (no complete '<prefix>.index' and no usable "
                f"'{STATE_FILENAME}' state file). Pass a model directory that has been trained, or a prefix."
            )
        return latest
    if fileio.exists(path):
        kind = _keras_file_kind(path)
        if kind is not None:
            readable = keras_file.is_keras_file(path)
            raise CorruptCheckpointError(
                f"{path}: is {kind}, not a TensorFlow checkpoint. "
                + (
                    "inspect, diff, map, convert --like and export read it; here a TF checkpoint is needed (a "
                    "prefix, its .index, a model directory or a SavedModel directory): write one with "
                    "`est-ckpt convert SRC DST --like=TEMPLATE` onto a TF checkpoint of the model."
                    if readable
                    else "est_ckpt reads TF checkpoints (a prefix, its .index, a model directory or a SavedModel "
                    "directory) and Keras 3's .weights.h5 and .keras. To carry these weights over, load them into "
                    "the model with Keras (`model.load_weights(path)`), write a TF checkpoint with "
                    "`tf.train.Checkpoint(model=model).write(prefix)` (or, with Keras 3, "
                    "`model.save_weights('model.weights.h5')`), and pass that."
                )
            )
        raise CorruptCheckpointError(
            f"{path}: is not a checkpoint (expected a prefix, '<prefix>.index', '<prefix>.data-*', a model "
            "directory or a SavedModel directory)."
        )
    raise CheckpointNotFoundError(f"{path}: no such checkpoint, file or directory.{_nearest_hint(path)}")


def _nearest_hint(path: str, limit: int = 3) -> str:
    """ " Did you mean ...?" naming the checkpoint prefixes (and model dirs) of `path`'s directory nearest to it."""
    directory = fileio.dirname(path.rstrip("/")) or "."
    try:
        names = fileio.listdir(directory)
    except (OSError, EstCkptError):
        return ""
    found = {fileio.basename(p): p for p in prefixes_on_disk(directory)}
    for name in names:
        sub = fileio.join(directory, name)
        try:
            if fileio.isdir(sub) and any(
                n == STATE_FILENAME or n.endswith(".index") or n in SAVED_MODEL_FILES
                for n in fileio.listdir(sub)
            ):
                found[name] = sub
        except (OSError, EstCkptError):
            continue
    if not found:
        return ""
    wanted = fileio.basename(path.rstrip("/"))
    nearest = difflib.get_close_matches(wanted, list(found), n=limit, cutoff=0.5) or sorted(found)[:limit]
    return " Did you mean " + " or ".join(repr(found[n]) for n in nearest) + "?"


# A SavedModel directory holds its variables as a checkpoint: `variables/variables.{index,data-*}`.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
SAVED_MODEL_VARIABLES = ("variables", "variables")


def saved_model_variables(directory: str) -> Optional[str]:
    """The checkpoint prefix of the SavedModel at `directory`, or None if it is no SavedModel.

    Raises:
      CheckpointNotFoundError: a SavedModel without variables (nothing to read).
    """
    if not any(fileio.exists(fileio.join(directory, name)) for name in SAVED_MODEL_FILES):
        return None
    prefix = fileio.join(directory, *SAVED_MODEL_VARIABLES)
    if not fileio.exists(bundle.index_path(prefix)):
        raise CheckpointNotFoundError(
            f"{directory}: is a SavedModel without variables ({bundle.index_path(prefix)} does not exist): "
            "it holds no checkpoint to read."
        )
    return prefix


# The first bytes of what Keras writes: HDF5 (`.weights.h5`, legacy `.h5`) and zip (`.keras`).
_KERAS_MAGIC = ((b"\x89HDF\r\n\x1a\n", "an HDF5 file"), (b"PK\x03\x04", "a zip archive"))
_KERAS_SUFFIXES = {
    ".weights.h5": "a Keras 3 weights file (.weights.h5)",
    ".keras": "a Keras model archive (.keras)",
    ".h5": "a Keras HDF5 file (.h5)",
    ".hdf5": "a Keras HDF5 file (.hdf5)",
}


def _keras_file_kind(path: str) -> Optional[str]:
    """What Keras file `path` is, by its suffix or its first bytes; None if it looks like none."""
    for suffix, kind in _KERAS_SUFFIXES.items():
        if path.lower().endswith(suffix):
            return kind
    try:
        fileio.require_regular(path, directory_ok=False)
        head = fileio.read_range(path, 0, 8)
    except OSError:
        return None
    return next((f"{what} (as Keras writes)" for magic, what in _KERAS_MAGIC if head.startswith(magic)), None)
