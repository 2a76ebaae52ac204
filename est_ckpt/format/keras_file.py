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
reconstructed by `keras_names` from the group attributes, Keras's own variable
order for its built-in layers, the optimizer's slot order, and `config.json` in a `.keras`.
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
import struct
import zipfile
from typing import BinaryIO, Callable, Optional

from est_ckpt import fileio
from est_ckpt.errors import CorruptCheckpointError, MissingDependencyError
from est_ckpt.format import bundle, dtypes, keras_names

WEIGHTS_SUFFIX = ".weights.h5"
KERAS_SUFFIX = ".keras"
WEIGHTS_MEMBER = "model.weights.h5"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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
    names, slots, unnamed = keras_names.name_variables(h5, config)
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
