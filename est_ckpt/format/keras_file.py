"""Keras 3's own files as checkpoints: `.weights.h5` and `.keras`, read and written without TensorFlow or Keras.

A `.weights.h5` is HDF5: `layers/<group>/vars/<i>` for each layer's variables
(the `vars` group's `name` attribute is `layer.name`; nested layers such as an
LSTM's `cell` or attention's `query_dense` are subgroups), `optimizer/vars/<i>`
(0: the step count, 1: the learning rate, then the slots), and `vars` (the
model's own, with the model's name). Datasets hold values by position, not
name; Keras writes them contiguous and uncompressed, so each is a byte range
of the file, exactly like a TensorBundle entry. A `.keras` is a zip of
`metadata.json`, `config.json` and `model.weights.h5`, stored uncompressed: the
same byte ranges, offset by the member's place in the archive.

`read_keras_file` returns those ranges as a `Bundle` over the file (entries
without checksums: HDF5 keeps none) and, for each dataset, the name Keras gives
the variable (`sequential/dense/kernel`, `adam/sequential_dense_kernel_momentum`),
reconstructed from the group attributes, Keras's own variable order for its
built-in layers, the optimizer's slot order, and `config.json` in a `.keras`.
Where a name cannot be known it stays `None` (the key, `layers/<group>/vars/<i>`,
names it) and `unnamed` says why. `write_keras_file` writes a file in a
template's layout with new values: the template's bytes around each dataset,
new bytes in each dataset's range.

h5py (the `keras` extra) is imported only here, only when such a file is read.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import struct
import zipfile
from typing import BinaryIO, Callable, Optional

from est_ckpt import fileio
from est_ckpt.errors import CorruptCheckpointError, MissingDependencyError
from est_ckpt.format import bundle, dtypes

WEIGHTS_SUFFIX = ".weights.h5"
KERAS_SUFFIX = ".keras"
WEIGHTS_MEMBER = "model.weights.h5"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_COUNTER = re.compile(r"_\d+$")


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise MissingDependencyError(
            "reading or writing Keras 3 files (.weights.h5, .keras) needs h5py: pip install 'est_ckpt[keras]'."
        ) from e
    return h5py


def is_keras_file(path: str) -> bool:
    """Whether `path` names a Keras 3 weights file or model archive (by its suffix)."""
    low = path.lower()
    return low.endswith(WEIGHTS_SUFFIX) or low.endswith(KERAS_SUFFIX)


# -- names Keras gives its built-in layers' variables, in the order it creates them -----------------

_KERNEL_BIAS = ("kernel", "bias")
_VARIABLE_NAMES = {
    "dense": _KERNEL_BIAS,
    "einsum_dense": _KERNEL_BIAS,
    "conv1d": _KERNEL_BIAS,
    "conv2d": _KERNEL_BIAS,
    "conv3d": _KERNEL_BIAS,
    "conv1d_transpose": _KERNEL_BIAS,
    "conv2d_transpose": _KERNEL_BIAS,
    "conv3d_transpose": _KERNEL_BIAS,
    "depthwise_conv1d": _KERNEL_BIAS,
    "depthwise_conv2d": _KERNEL_BIAS,
    "separable_conv1d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "separable_conv2d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "embedding": ("embeddings",),
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"),
    "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
    "p_re_lu": ("alpha",),
    "seed_generator": ("seed_generator_state",),
}
# Classes whose variables are all there or fall away from the end (`use_bias=False`).
_TRAILING_OPTIONAL = frozenset(_VARIABLE_NAMES) - {"seed_generator"}
# Scale and center each add one variable: which remain is told by the count, or by the config.
_NORMALIZATION = {
    "batch_normalization": (
        ("gamma", "scale"),
        ("beta", "center"),
        ("moving_mean", None),
        ("moving_variance", None),
    ),
    "layer_normalization": (("gamma", "scale"), ("beta", "center")),
    "group_normalization": (("gamma", "scale"), ("beta", "center")),
}
_NOT_TRAINABLE = frozenset(("moving_mean", "moving_variance", "seed_generator_state"))
# A nested layer, by the attribute that holds it in its parent: its class.
_NESTED_CLASS = {
    "cell": None,
    "query_dense": "einsum_dense",
    "key_dense": "einsum_dense",
    "value_dense": "einsum_dense",
    "output_dense": "einsum_dense",
    "seed_generator": "seed_generator",
}
# The order a layer's sublayers' variables take in `trainable_variables` where it is not the file's.
_SUBLAYER_ORDER = {"multi_head_attention": ("query_dense", "key_dense", "value_dense", "output_dense")}

# Each Keras 3 optimizer's slots after `iteration` and `learning_rate`, as `build` creates them: a tuple of
# (slot names interleaved per variable) groups, one after another; the name est_ckpt's slot kinds use and
# the suffix Keras gives the variable.
_OPTIMIZER_SLOTS = {
    "adam": ((("m", "momentum"), ("v", "velocity")), (("vhat", "velocity_hat"),)),
    "adam_w": ((("m", "momentum"), ("v", "velocity")), (("vhat", "velocity_hat"),)),
    "lamb": ((("m", "momentum"), ("v", "velocity")),),
    "nadam": ((("m", "momentum"), ("v", "velocity")),),
    "adamax": ((("m", "momentum"), ("u", "norm")),),
    "adadelta": (
        (("accumulated_grad", "accumulated_grad"), ("accumulated_delta_var", "accumulated_delta_var")),
    ),
    "ftrl": ((("accumulator", "accumulator"), ("linear", "linear")),),
    "adagrad": ((("accumulator", "accumulator"),),),
    "sgd": ((("momentum", "momentum"),),),
    "lion": ((("lion_m", "momentum"),),),
    "rm_sprop": (
        (("velocity", "velocity"),),
        (("momentum", "momentum"),),
        (("average_gradient", "average_gradient"),),
    ),
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset: its key (HDF5 path), dtype, shape, byte range, Keras's name, and the slot it is."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    name: Optional[str] = None
    slot_of: Optional[str] = None  # the key of the variable this optimizer slot belongs to
    slot_name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class KerasFile:
    """What a Keras file holds.

    Attributes:
      path: the file.
      kind: `"weights.h5"` or `"keras"`.
      datasets: every dataset, by key, in key order.
      bundle: the datasets as a TensorBundle over the file (no checksums).
      unnamed: why some names could not be reconstructed (each a sentence naming the keys).
      base: where the HDF5 file starts in `path` (the member's data in a `.keras`).
      h5_size: the HDF5 file's size.
    """

    path: str
    kind: str
    datasets: dict[str, Dataset]
    bundle: bundle.Bundle
    unnamed: tuple[str, ...]
    base: int
    h5_size: int


class _Window(io.RawIOBase):
    """A read-only file over `size` bytes of `f` from `base` (the HDF5 member of a `.keras` archive)."""

    def __init__(self, f: BinaryIO, base: int, size: int):
        self._f, self._base, self._size, self._pos = f, base, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else self._pos + pos if whence == 1 else self._size + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self._size - self._pos))
        self._f.seek(self._base + self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _member(path: str, f: BinaryIO) -> tuple[int, int, dict]:
    """`(data offset, size, config)` of a `.keras` archive's weights member."""
    try:
        archive = zipfile.ZipFile(f)
        info = archive.getinfo(WEIGHTS_MEMBER)
        config = json.loads(archive.read("config.json")) if "config.json" in archive.namelist() else {}
    except KeyError:
        raise CorruptCheckpointError(
            f"{path}: the archive holds no '{WEIGHTS_MEMBER}': it is no Keras 3 model file."
        ) from None
    except (zipfile.BadZipFile, ValueError) as e:
        raise CorruptCheckpointError(f"{path}: is not a readable .keras archive ({e}).") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise CorruptCheckpointError(
            f"{path}: '{WEIGHTS_MEMBER}' is compressed in the archive (Keras stores it uncompressed). Save the "
            "model again with Keras, or extract the member and pass the .weights.h5."
        )
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise CorruptCheckpointError(f"{path}: the archive's entry for '{WEIGHTS_MEMBER}' is damaged.")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size, config


def _layer_configs(config: dict) -> dict[str, dict]:
    """`{layer name: layer config}` of a `.keras` model's top-level layers (each with `class_name`)."""
    out: dict[str, dict] = {}
    for layer in (config.get("config") or {}).get("layers") or []:
        if isinstance(layer, dict):
            cfg = layer.get("config") or {}
            out[cfg.get("name") or layer.get("name")] = {**cfg, "class_name": layer.get("class_name")}
    return out


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _variable_names(cls: Optional[str], n: int, config: Optional[dict]) -> Optional[tuple[str, ...]]:
    """The names of a layer's `n` variables, in order; None where they cannot be known."""
    if cls in _NORMALIZATION:
        specs = _NORMALIZATION[cls]
        if config is not None:
            names = tuple(name for name, flag in specs if flag is None or config.get(flag, True))
        else:
            full = tuple(name for name, _ in specs)
            stats = tuple(name for name, flag in specs if flag is None)
            names = full if n == len(full) else stats if stats and n == len(stats) else ()
        return names if len(names) == n else None
    names = _VARIABLE_NAMES.get(cls or "")
    if names is None:
        return None
    if n == len(names):
        return names
    return names[:n] if cls in _TRAILING_OPTIONAL and 0 < n < len(names) else None


@dataclasses.dataclass
class _Layer:
    group: str  # its HDF5 group
    name: str  # layer.name
    cls: Optional[str]
    datasets: list  # (key, dtype, shape, offset, size), by index
    children: list
    config: Optional[dict] = None


def _read_layers(h5, group, cls_hint: Optional[str], configs: dict, out: list) -> None:
    """Appends the layers under `group` (each a subgroup holding `vars`)."""
    for key in group:
        sub = group[key]
        if not hasattr(sub, "keys") or "vars" not in sub:
            continue
        layer = _layer(h5, sub, key, cls_hint, configs)
        out.append(layer)


def _layer(h5, group, key: str, parent_cls: Optional[str], configs: dict) -> _Layer:
    var_group = group["vars"]
    name = str(var_group.attrs.get("name", key))
    config = configs.get(name) if parent_cls is None else None
    if config is not None and config.get("class_name"):
        cls = _snake(config["class_name"])
    elif parent_cls is not None and key in _NESTED_CLASS:
        cls = _NESTED_CLASS[key] or (
            parent_cls.replace("lstm", "lstm_cell")
            .replace("gru", "gru_cell")
            .replace("simple_rnn", "simple_rnn_cell")
            if parent_cls in ("lstm", "gru", "simple_rnn")
            else None
        )
    else:
        cls = _COUNTER.sub("", key) if parent_cls is None else None
    datasets = []
    indices = sorted(int(k) for k in var_group if k.isdigit())
    for i in indices:
        datasets.append(var_group[str(i)])
    layer = _Layer(group.name.lstrip("/"), name, cls, datasets, [], config)
    for child_key in group:
        if child_key == "vars":
            continue
        child = group[child_key]
        if hasattr(child, "keys") and "vars" in child:
            layer.children.append((child_key, _layer(h5, child, child_key, cls or "", configs)))
        elif hasattr(child, "keys") and child_key == "layers":
            nested: list = []
            _read_layers(h5, child, None, {}, nested)
            layer.children.extend((n.group.rpartition("/")[2], n) for n in nested)
    return layer


def _first_offset(layer: _Layer) -> int:
    offsets = [d.id.get_offset() or 0 for d in layer.datasets]
    offsets += [_first_offset(c) for _, c in layer.children]
    return min(offsets, default=1 << 62)


class _Namer:
    """Names every dataset of the file and lists the trainable variables in Keras's order."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.trainable: list[str] = []  # keys, in `model.trainable_variables` order
        self.unnamed: list[str] = []
        self.order_known = True

    def layer(self, layer: _Layer, prefix: str) -> None:
        path = f"{prefix}{layer.name}"
        names = _variable_names(layer.cls, len(layer.datasets), layer.config) if layer.datasets else ()
        keys_ = [d.name.lstrip("/") for d in layer.datasets]
        if names is None:
            self.unnamed.append(
                f"'{layer.group}' ({layer.cls or 'a custom layer'}, {len(keys_)} variable(s)): Keras's names "
                "for its variables are not known, so they go by their keys"
            )
            self.order_known = False
        else:
            for key, var in zip(keys_, names):
                self.names[key] = f"{path}/{var}"
                if var not in _NOT_TRAINABLE and (
                    layer.config is None or layer.config.get("trainable", True)
                ):
                    self.trainable.append(key)
        order = _SUBLAYER_ORDER.get(layer.cls or "")
        children = layer.children
        if order is not None and {k for k, _ in children} >= set(order):
            rank = {k: i for i, k in enumerate(order)}
            children = sorted(children, key=lambda kc: (rank.get(kc[0], len(rank)), _first_offset(kc[1])))
        else:
            holding = [c for _, c in children if _has_variables(c)]
            if len(holding) > 1 or (holding and layer.datasets):
                self.order_known = False  # the file's walk order need not be `trainable_variables` order
            children = sorted(children, key=lambda kc: _first_offset(kc[1]))
        for _, child in children:
            self.layer(child, f"{path}/")


def _has_variables(layer: _Layer) -> bool:
    return bool(layer.datasets) or any(_has_variables(c) for _, c in layer.children)


def _slot_plan(optimizer: str, n_slots: int, n_vars: int, config: Optional[dict]) -> Optional[list]:
    """`[(variable index, slot name, suffix)]` for each slot position, or None where the layout is unknown."""
    groups = _OPTIMIZER_SLOTS.get(_COUNTER.sub("", optimizer))
    if groups is None or n_vars == 0:
        return None
    base = _COUNTER.sub("", optimizer)
    if base == "rm_sprop":
        cfg = config or {}
        chosen = [groups[0]]
        if n_slots == 2 * n_vars and config is not None:
            chosen.append(groups[1] if cfg.get("momentum", 0) else groups[2])
        elif n_slots == 3 * n_vars:
            chosen += [groups[1], groups[2]]
        elif n_slots != n_vars:
            return None
        groups = tuple(chosen)
    elif base in ("adam", "adam_w"):
        groups = groups if n_slots == 3 * n_vars else groups[:1]
    out = []
    for group in groups:
        for i in range(n_vars):
            for slot_name, suffix in group:
                out.append((i, slot_name, suffix))
    if base == "nadam":
        out.append((None, "u_product", "variable"))
    return out if len(out) == n_slots else None


def _optimizer_config(config: dict) -> Optional[dict]:
    compile_config = config.get("compile_config") or {}
    opt = compile_config.get("optimizer")
    return (opt.get("config") or {}) if isinstance(opt, dict) else None


def read_keras_file(path: str) -> KerasFile:
    """Reads a `.weights.h5` or `.keras` file's layout (never its values), without Keras.

    Raises:
      CheckpointNotFoundError: no such file.
      CorruptCheckpointError: not a Keras 3 file, or a dataset not stored as Keras stores it.
      MissingDependencyError: h5py is not installed.
    """
    h5py = _h5py()
    fileio.require_regular(path, directory_ok=False)
    kind = "keras" if path.lower().endswith(KERAS_SUFFIX) else "weights.h5"
    with fileio.open_read(path) as f:
        head = f.read(8)
        f.seek(0)
        if kind == "keras" or head.startswith(b"PK\x03\x04"):
            kind = "keras"
            base, size, config = _member(path, f)
        else:
            f.seek(0, 2)
            base, size, config = 0, f.tell(), {}
        f.seek(base)
        if f.read(8) != _HDF5_MAGIC:
            raise CorruptCheckpointError(f"{path}: is not an HDF5 file, as Keras writes weights.")
        try:
            with h5py.File(_Window(f, base, size), "r") as h5:
                return _read_h5(path, kind, h5, base, size, config)
        except OSError as e:
            raise CorruptCheckpointError(f"{path}: HDF5 cannot read it ({e}).") from None


def _dtype(path: str, ds) -> str:
    import numpy as np  # noqa: PLC0415 - h5py brings numpy

    dt = np.dtype(ds.dtype)
    name = dt.name if dt.kind in "biuf" else None
    if name is None or name not in dtypes.DTYPE_ENUM or dt.byteorder == ">":
        raise CorruptCheckpointError(
            f"{path}: '{ds.name.lstrip('/')}' holds {dt}, not a number type est_ckpt carries over."
        )
    return name


def _read_h5(path: str, kind: str, h5, base: int, size: int, config: dict) -> KerasFile:
    if "layers" not in h5 and "optimizer" not in h5 and "vars" not in h5:
        raise CorruptCheckpointError(
            f"{path}: holds no 'layers', 'optimizer' or 'vars' group: it is not a Keras 3 weights file "
            "(a legacy Keras .h5 is read by Keras, which can save it again as .weights.h5)."
        )
    configs = _layer_configs(config)
    layers: list[_Layer] = []
    if "layers" in h5:
        _read_layers(h5, h5["layers"], None, configs, layers)
    model_name = str(h5["vars"].attrs.get("name", "")) if "vars" in h5 else ""
    # Sequential's variables carry its name (`net/dense/kernel`), a functional model's do not; only a
    # functional model lists its InputLayer among its layers.
    has_input = any(_COUNTER.sub("", layer.group.rpartition("/")[2]) == "input_layer" for layer in layers)
    model_class = config.get("class_name") or ("Functional" if has_input else "Sequential")
    prefix = f"{model_name}/" if model_class == "Sequential" and model_name else ""
    if configs:
        rank = {name: i for i, name in enumerate(configs)}
        layers.sort(key=lambda layer: (rank.get(layer.name, len(rank)), _first_offset(layer)))
    else:
        layers.sort(key=_first_offset)
    namer = _Namer()
    for layer in layers:
        namer.layer(layer, prefix)
    names, slots = dict(namer.names), {}
    unnamed = list(namer.unnamed)
    if "optimizer" in h5 and "vars" in h5["optimizer"]:
        opt_group = h5["optimizer"]["vars"]
        opt = str(opt_group.attrs.get("name", "optimizer"))
        count = sum(1 for k in opt_group if k.isdigit())
        if count >= 1:
            names["optimizer/vars/0"] = f"{opt}/iteration"
        if count >= 2:
            names["optimizer/vars/1"] = f"{opt}/learning_rate"
        plan = (
            _slot_plan(opt, count - 2, len(namer.trainable), _optimizer_config(config)) if count > 2 else []
        )
        if plan is None or (count > 2 and not namer.order_known):
            unnamed.append(
                f"'optimizer/vars/2' to 'optimizer/vars/{count - 1}' ({opt}): which variable each slot "
                "belongs to is not known, so they go by their keys"
            )
        else:
            for pos, (i, slot_name, suffix) in enumerate(plan, start=2):
                key = f"optimizer/vars/{pos}"
                if i is None:  # Nadam's `_u_product`: optimizer state of no one variable
                    names[key] = f"{opt}/{suffix}"
                    slots[key] = (None, slot_name)
                    continue
                var = namer.trainable[i]
                names[key] = f"{opt}/{names[var].replace('/', '_')}_{suffix}"
                slots[key] = (var, slot_name)
    datasets: dict[str, Dataset] = {}

    def visit(name, obj):
        if not isinstance(obj, h5py_dataset):
            return
        offset = obj.id.get_offset()
        nbytes = obj.size * obj.dtype.itemsize
        if obj.size and (offset is None or obj.chunks is not None or obj.id.get_storage_size() != nbytes):
            raise CorruptCheckpointError(
                f"{path}: '{name}' is stored chunked or compressed, not as Keras writes it. Load the model "
                "with Keras and save its weights again."
            )
        slot = slots.get(name)
        datasets[name] = Dataset(
            name,
            _dtype(path, obj),
            tuple(int(d) for d in obj.shape),
            (offset or 0),
            nbytes,
            names.get(name),
            slot[0] if slot else None,
            slot[1] if slot else None,
        )

    h5py_dataset = _h5py().Dataset
    h5.visititems(visit)
    datasets = dict(sorted(datasets.items()))
    entries = {
        k: bundle.Entry(k, dtypes.DTYPE_ENUM[d.dtype], d.shape, 0, base + d.offset, d.size, 0)
        for k, d in datasets.items()
    }
    file_size = fileio.getsize(path)
    b = bundle.Bundle(path, bundle.Header(1), entries, [], [file_size], data_file=path, checksummed=False)
    return KerasFile(path, kind, datasets, b, tuple(unnamed), base, size)


# -- writing ----------------------------------------------------------------------------------------


def write_keras_file(
    template: KerasFile,
    dst: str,
    values: dict[str, Callable[[BinaryIO], int]],
) -> None:
    """Writes `dst` (which must not exist): `template`'s file, each dataset in `values` written anew.

    Every byte but the datasets' is the template's: the same HDF5 structure,
    attributes and (for a `.keras`) `metadata.json` and `config.json`. Each
    writer writes exactly its dataset's bytes at the file's current position.
    """
    if template.kind == "keras":
        fileio.write_new_with(dst, lambda f: _write_archive(template, f, values))
    else:
        fileio.write_new_with(dst, lambda f: _write_h5(template, f, values))


def _write_h5(template: KerasFile, f: BinaryIO, values: dict) -> None:
    """The template's HDF5 bytes with `values`' datasets replaced, written from `f`'s current position."""
    start = f.tell()
    ranges = sorted((d.offset, d.size, key) for key, d in template.datasets.items() if key in values)
    pos = 0
    with fileio.open_read(template.path) as src:
        for offset, size, key in ranges:
            _copy(src, template.base + pos, offset - pos, f)
            f.seek(start + offset)
            values[key](f)
            if f.tell() != start + offset + size:
                raise CorruptCheckpointError(
                    f"{template.path}: '{key}' was written with {f.tell() - start - offset} bytes, not {size}."
                )
            pos = offset + size
        _copy(src, template.base + pos, template.h5_size - pos, f)


def _copy(src: BinaryIO, offset: int, size: int, out: BinaryIO) -> None:
    src.seek(offset)
    while size > 0:
        data = src.read(min(size, 1 << 22))
        if not data:
            raise CorruptCheckpointError(f"{getattr(src, 'name', 'the template')}: is truncated.")
        out.write(data)
        size -= len(data)


def _write_archive(template: KerasFile, f: BinaryIO, values: dict) -> None:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryFile() as h5, fileio.open_read(template.path) as src:
        _write_h5(template, h5, values)
        size = h5.tell()
        with zipfile.ZipFile(src) as old, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as new:
            for info in old.infolist():
                if info.filename != WEIGHTS_MEMBER:
                    new.writestr(info, old.read(info.filename))
                    continue
                member = zipfile.ZipInfo(WEIGHTS_MEMBER, date_time=info.date_time)
                member.compress_type = zipfile.ZIP_STORED
                member.file_size = size
                h5.seek(0)
                with new.open(member, "w", force_zip64=size > (1 << 31)) as out:
                    while True:
                        data = h5.read(1 << 22)
                        if not data:
                            break
                        out.write(data)


def describe(k: KerasFile) -> str:
    """`a Keras 3 weights file (.weights.h5)` / `a Keras model archive (.keras)`."""
    return "a Keras model archive (.keras)" if k.kind == "keras" else "a Keras 3 weights file (.weights.h5)"


__all__ = [
    "KERAS_SUFFIX",
    "WEIGHTS_SUFFIX",
    "Dataset",
    "KerasFile",
    "describe",
    "is_keras_file",
    "read_keras_file",
    "write_keras_file",
]
