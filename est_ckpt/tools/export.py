"""Weights out of TensorFlow: every tensor of a checkpoint into one `.safetensors` or `.npz` file, by name.

For teams whose next framework is PyTorch or JAX: `export_checkpoint(src, out)`
writes each variable under its TF1 name (`names="tf1"`: a TF2 checkpoint's
recorded `full_name`s, as `est-ckpt convert --to=tf1` names them) or its object
path (`names="path"`), partitioned variables joined whole. SRC is any checkpoint
est_ckpt reads, a Keras 3 `.weights.h5` / `.keras` included (by Keras's names).

Nothing is loaded whole but a partitioned variable: each tensor's bytes are
copied from its shard in 4 MiB chunks, checked against their CRC32C, straight
into OUT (safetensors' layout and numpy's `.npy` are the same little-endian
bytes TensorBundle stores). The safetensors file is written to the format's
specification (an 8-byte header length, a JSON header, the data), readable by
the `safetensors` library's `safe_open` / `load_file`; `.npz` is what
`numpy.load` reads. With `rules` (a rules file, `docs/transforms.md`), a
tensor a rule reaches is written under the rule's target name instead, its
value computed by the rule's transforms (streamed, as `convert --like` does):
each rule's target is spelled out from its first source's name, so a target
is written out but for its groups (`layer_(\\d+)/weight` from
`layer_\\1/kernel`). Tensors no rule reaches keep their names.
Strings (and other non-numbers) have no place in either:
they are left out and reported. OUT is written under a temporary name and
renamed into place; an existing OUT is replaced only with `force`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import struct
import zipfile
from typing import BinaryIO, Callable

from est_ckpt import fileio
from est_ckpt.errors import ConversionError, CorruptCheckpointError, RulesFileError
from est_ckpt.format import bundle, checkpoint, dtypes, keys, tensors, wire
from est_ckpt.mapping.planner import plan_mapping
from est_ckpt.mapping.rules_file import RulesArg, load_rules
from est_ckpt.mapping.tf1_names import tf1_variables
from est_ckpt.mapping.transforms import Transform
from est_ckpt.tools import compute, publish

NAMINGS = ("tf1", "path")
FORMATS = {".safetensors": "safetensors", ".npz": "npz"}
# safetensors' dtype names.
_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint64": "U64",
    "uint32": "U32",
    "uint16": "U16",
    "uint8": "U8",
    "bool": "BOOL",
}
_CHUNK = 4 << 20


@dataclasses.dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    size: int
    write: Callable[[BinaryIO], None]
    keys: tuple[str, ...] = ()  # the source keys it is read from


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What `export_checkpoint` wrote.

    Attributes:
      path: the file written.
      format: `"safetensors"` or `"npz"`.
      tensors: the names written, in file order.
      left_out: `(key, why)` for every tensor of SRC not written (strings, bookkeeping).
      bytes: the tensor data written.
    """

    path: str
    format: str
    tensors: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]
    bytes: int


def _copy_entry(b: bundle.Bundle, entry: bundle.Entry) -> Callable[[BinaryIO], None]:
    """Writes `entry`'s stored bytes, chunk by chunk, checking their CRC32C (where the file keeps one)."""

    def write(f: BinaryIO) -> None:
        path = b.data_path(entry.shard_id)
        crc = size = 0
        for chunk in fileio.iter_range(path, entry.offset, entry.size, _CHUNK):
            if b.checksummed:
                crc = wire.crc32c(chunk, crc)
            f.write(chunk)
            size += len(chunk)
        if size != entry.size:
            raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
        if b.checksummed and crc != wire.unmask_crc(entry.crc32c):
            raise CorruptCheckpointError(
                f"{path}: the bytes of '{entry.key}' fail their CRC32C check; the data file is damaged. "
                "Nothing was exported."
            )

    return write


def _whole(b: bundle.Bundle, entry: bundle.Entry, parts) -> Callable[[BinaryIO], None]:
    """Writes a variable read whole: a partitioned entry, parts saved one by one, or a boolean."""

    def write(f: BinaryIO) -> None:
        import numpy as np

        stored = b.entries.get(entry.key)
        if stored is not None and (stored.slices or not parts):  # stored whole, or as one sliced entry
            value = tensors.read_tensor(b, entry.key)
        else:  # parts saved one by one
            value = tensors.join_parts(b, entry, parts)
        f.write(np.ascontiguousarray(value).tobytes())

    return write


def _computed(info: checkpoint.CheckpointInfo, transform: Transform) -> Callable[[BinaryIO], None]:
    """Writes a rule's transformed value: streamed into a file, whole into an `.npz` member (no file number)."""

    def write(f: BinaryIO) -> None:
        try:
            f.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            f.write(compute.evaluate(info, transform).tobytes())
        else:
            compute.producer(info, transform).write(f)

    return write


def _renamed(info: checkpoint.CheckpointInfo, items: list[_Tensor], rules: RulesArg) -> list[_Tensor]:
    """`items` with each tensor a rule reaches replaced, in place, by the rule's target(s).

    Raises:
      RulesFileError: no rule reaches a tensor, or a target cannot be spelled out.
      MappingError: a rule's transforms do not fit, or its other sources are missing.
    """
    rules = load_rules(rules)
    targets = rules.targets_of(t.name for t in items)
    if not targets:
        raise RulesFileError(
            f"{rules.name}: none of its {len(rules.rules)} rule(s) reaches a tensor of {info.prefix} by its "
            "exported name (try names='path' or 'tf1')."
        )
    plan = plan_mapping(info, targets, rules=rules)
    plan.raise_for_errors(conversion=True)
    by_key = {k: t for t in items for k in t.keys}
    made: dict[str, list[_Tensor]] = {}
    for a in plan.assignments:
        t = a.transform
        if t is None:  # a rename: the source's bytes as they are
            if a.source_keys[0] not in by_key:
                raise ConversionError(
                    f"'{a.target}' <- '{a.source_name}': it holds {a.source_dtype}, which safetensors and .npz "
                    "files do not hold."
                )
            new = dataclasses.replace(by_key[a.source_keys[0]], name=a.target)
        else:
            size = math.prod(t.shape) * dtypes.itemsize(dtypes.DTYPE_ENUM[t.dtype])
            read = tuple(k for ks in t.keys for k in ks)
            new = _Tensor(a.target, t.dtype, tuple(t.shape), size, _computed(info, t), read)
        made.setdefault(new.keys[0], []).append(new)
        for k in new.keys:
            made.setdefault(k, [])
    out: list[_Tensor] = []
    for item in items:
        consumed = [k for k in item.keys if k in made]
        if not consumed:
            out.append(item)
        for k in consumed:
            out.extend(made.pop(k))
    return out


def _plan(info: checkpoint.CheckpointInfo, names: str) -> tuple[list[_Tensor], list[tuple[str, str]]]:
    b = info.bundle
    out: list[_Tensor] = []
    left: list[tuple[str, str]] = []
    if info.format == "keras":
        variables = [
            (t.name if names == "tf1" and t.name else k, b.entries[k], (), (k,))
            for k, t in info.tensors.items()
        ]
    else:
        naming = tf1_variables(
            info, names="full_name" if names == "tf1" else "path", skip_underivable_slots=True, strict=False
        )
        left += [(k, "bookkeeping of tf.train.Checkpoint, not a variable") for k in naming.dropped]
        left += [
            (k, "a slot whose TF1 name cannot be derived (export with names='path')")
            for k in naming.skipped_slots
        ]
        variables = []
        for v in naming.variables:
            name = v.name
            if names == "path" and info.format == "tf2" and keys.is_variable_key(name):
                name = keys.strip_value_suffix(name)
            variables.append((name, v.entry, v.parts, tuple(v.source_keys) or (v.entry.key,)))
    for name, entry, parts, source_keys in variables:
        key = source_keys[0]
        dtype = dtypes.dtype_name(entry.dtype)
        if dtype not in _SAFETENSORS_DTYPES:
            left.append((key, f"holds {dtype}, which safetensors and .npz files do not"))
            continue
        shape = tuple(entry.shape)
        size = entry.num_elements * dtypes.itemsize(entry.dtype)
        whole = bool(parts) or bool(entry.slices) or dtype == "bool"
        write = _whole(b, entry, parts) if whole else _copy_entry(b, entry)
        out.append(_Tensor(name, dtype, shape, size, write, source_keys))
    return out, left


def _check_names(info: checkpoint.CheckpointInfo, items: list[_Tensor]) -> None:
    seen: dict[str, str] = {}
    for t in items:
        if t.dtype not in _SAFETENSORS_DTYPES:
            raise ConversionError(
                f"'{t.name}': the rule's transforms give {t.dtype}, which safetensors and .npz files do not "
                "hold; add a cast."
            )
        if t.name in seen:
            raise ConversionError(
                f"{info.prefix}: '{seen[t.name]}' and '{t.keys[0]}' are both named '{t.name}'; export with "
                "names='path' (or rules that name them apart)."
            )
        seen[t.name] = t.keys[0]


def _write_safetensors(items: list[_Tensor], f: BinaryIO, source: str) -> None:
    header: dict = {"__metadata__": {"format": "pt", "source": source}}
    pos = 0
    for t in items:
        header[t.name] = {
            "dtype": _SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [pos, pos + t.size],
        }
        pos += t.size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    f.write(struct.pack("<Q", len(raw)) + raw)
    for t in items:
        t.write(f)


def _npy_header(t: _Tensor) -> bytes:
    import numpy as np

    descr = np.lib.format.dtype_to_descr(np.dtype(dtypes.numpy_dtype(dtypes.DTYPE_ENUM[t.dtype])))
    d = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(t.shape)!r}, }}"
    head = d.encode("latin1")
    pad = -(10 + len(head) + 1) % 64
    head = head + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head


def _write_npz(items: list[_Tensor], f: BinaryIO) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for t in items:
            header = _npy_header(t)
            info = zipfile.ZipInfo(t.name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = len(header) + t.size
            with z.open(info, "w", force_zip64=info.file_size > (1 << 31) - 1) as out:
                out.write(header)
                t.write(out)


def export_checkpoint(
    src: str, out: str, names: str = "tf1", *, rules: RulesArg = None, force: bool = False
) -> ExportReport:
    """Writes every tensor of checkpoint `src` to `out` (`.safetensors` or `.npz`), by name.

    Args:
      src: a checkpoint (prefix, model directory, SavedModel) or a Keras 3 `.weights.h5` / `.keras`.
      out: the file to write; its suffix picks the format.
      names: `"tf1"`, each variable's TF1 name (`dense/kernel`); `"path"`, its object path.
      rules: a rules file, preset or `Rules` (`load_rules`): a tensor a rule reaches by
        its name (as `names` gives it) is written under the rule's target name, its
        value transformed.
      force: replace an existing `out`.

    Returns:
      An `ExportReport`, naming what was left out and why.

    Raises:
      ConversionError: an unknown suffix or naming, or two tensors of one name.
      RulesFileError, MappingError: `rules` cannot be read, reaches no tensor, or does not fit.
      DestinationExistsError: `out` exists and `force` is false.
      CorruptCheckpointError: SRC's bytes are damaged (nothing is left at `out`).
    """
    out = str(out)
    kind = next((k for suffix, k in FORMATS.items() if out.lower().endswith(suffix)), None)
    if kind is None:
        raise ConversionError(
            f"{out}: export writes .safetensors or .npz files; name OUT with one of those suffixes."
        )
    if names not in NAMINGS:
        raise ConversionError(f"`names` must be one of {NAMINGS} (got {names!r}).")
    info = checkpoint.read_checkpoint(src)
    publish.check_file_destination(
        out, inputs=(info.prefix,), force=force, on_directory="export writes one file."
    )
    items, left = _plan(info, names)
    if rules is not None:
        items = _renamed(info, items, rules)
    _check_names(info, items)
    if kind == "safetensors":
        writer = lambda f: _write_safetensors(items, f, info.prefix)  # noqa: E731
    else:
        writer = lambda f: _write_npz(items, f)  # noqa: E731
    publish.write_file(out, lambda path: fileio.write_new_with(path, writer))
    return ExportReport(out, kind, tuple(t.name for t in items), tuple(left), sum(t.size for t in items))


__all__ = ["FORMATS", "NAMINGS", "ExportReport", "export_checkpoint"]
