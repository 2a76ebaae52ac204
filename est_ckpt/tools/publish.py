"""Writing a checkpoint whose data shards already exist: a new index over linked shards, atomic and verified.

`convert` (TF1 <-> TF2) and `onto` (onto a template's layout) both rewrite
only the index: the data shards they read are hard-linked (local) or copied
through `tf.io.gfile` (remote) under a temporary prefix, the index is written
and read back, then everything is renamed into place, the index last, so no
half-written checkpoint is ever readable. The destination directory's
`checkpoint` state file then names it, as `Saver.save` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

from est_ckpt import fileio
from est_ckpt.errors import (
    ConversionError,
    CorruptCheckpointError,
    DestinationExistsError,
    DestinationNotWritableError,
    FormatError,
)
from est_ckpt.format import bundle, state_file, tensors
from est_ckpt.format.assembly import NewShard
from est_ckpt.format.table import read_table


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a checkpoint is to be written.

    Attributes:
      prefix: the checkpoint prefix.
      directory: its directory.
      existing: the files of a checkpoint already there (replaced only with force).
    """

    prefix: str
    directory: str
    existing: tuple[str, ...]


def _data_files(prefix: str) -> list[str]:
    directory, base = fileio.dirname(prefix) or ".", fileio.basename(prefix)
    try:
        listing = fileio.listdir(directory)
    except OSError:  # fileio turns gfile's errors into OSErrors too.
        return []
    pattern = re.compile(re.escape(base) + r"\.data-\d{5}-of-\d{5}$")
    return [fileio.join(directory, n) for n in listing if pattern.match(n)]


def _resolve_destination(src_prefix: str, dst: str) -> str:
    """Returns the prefix `dst` names: in a model directory, the source's base name."""
    dst = str(dst)
    if dst.endswith(("/", os.sep)) or fileio.isdir(dst):
        return fileio.join(dst.rstrip("/").rstrip(os.sep) or dst, fileio.basename(src_prefix))
    return dst


def destination(src_prefix: str, dst: str, *, force: bool, inputs: Sequence[str] = ()) -> Destination:
    """Resolves `dst` and refuses to write over an input or, without `force`, over a checkpoint.

    Args:
      src_prefix: the source checkpoint's prefix (a model directory `dst` gets its base name).
      dst: the prefix to write, or a model directory.
      force: whether an existing checkpoint at the prefix may be replaced.
      inputs: further checkpoint prefixes read (a template) that must not be the destination either.

    Raises:
      ConversionError: the destination is an input checkpoint.
      DestinationExistsError: a checkpoint exists there and `force` is false.
    """
    prefix = _resolve_destination(src_prefix, dst)
    for read in (src_prefix, *inputs):
        if fileio.same_file(prefix, read) or (
            fileio.exists(bundle.index_path(prefix))
            and fileio.same_file(bundle.index_path(prefix), bundle.index_path(read))
        ):
            what = "the source checkpoint" if read == src_prefix else f"an input checkpoint ({read})"
            raise ConversionError(f"{prefix}: the destination is {what}; choose another prefix.")
    dest = save_destination(prefix)
    if dest.existing and not force:
        what = f"Destination {prefix} already exists ({fileio.basename(dest.existing[0])})"
        raise DestinationExistsError(f"{what}; pass force=True to replace it.").for_cli(
            f"{what}; pass --force to replace it."
        )
    return dest


def save_destination(prefix: str) -> Destination:
    """Where a save writes `prefix`: the files of a checkpoint already there (a step saved again) are replaced."""
    existing = _data_files(prefix)
    if fileio.exists(bundle.index_path(prefix)):
        existing.append(bundle.index_path(prefix))
    return Destination(prefix, fileio.dirname(prefix) or ".", tuple(existing))


def check_sources(referenced: Iterable[tuple[bundle.Bundle, bundle.Entry]], dst_prefix: str) -> None:
    """Checks the CRC32C of every stored tensor a new index will point at, in the file it lives in now.

    Linking a shard shares bytes it never reads: without this, a damaged
    source would be published as a sound-looking checkpoint. The reader is
    the one `verify` runs (numeric tensors streamed in chunks).

    Args:
      referenced: `(bundle, entry)` for every stored (unpartitioned, or one
        part's) entry the new index reuses.
      dst_prefix: the destination, named in the error.

    Raises:
      CorruptCheckpointError: a tensor's bytes are truncated or fail their CRC32C, naming its file and key.
    """
    seen: set[tuple[int, str, int, int]] = set()
    for b, entry in referenced:
        where = (id(b), entry.key, entry.shard_id, entry.offset)
        if entry.slices or where in seen:
            continue
        seen.add(where)
        try:
            tensors.check_tensor(b, entry)
        except CorruptCheckpointError as e:
            raise CorruptCheckpointError(
                f"{e} Nothing was written to {dst_prefix}: restore the source from a good copy "
                "(`est-ckpt verify` lists every damaged tensor)."
            ) from None


def verify_written(prefix: str, header: bytes, rows: dict[bytes, bytes], shard_sizes: Sequence[int]) -> None:
    """Reads a written checkpoint back: every index block's CRC, every entry byte for byte, every shard's size.

    Entries are compared as bytes, so keys, dtypes, shapes, slices and
    offsets all read back exactly as they were validated in the source.
    """
    path = bundle.index_path(prefix)
    try:
        table = read_table(fileio.read_bytes(path))
    except (OSError, FormatError) as e:
        raise ConversionError(f"{path}: the index written does not read back ({e}).") from None
    if len(table) != len(rows) + 1 or dict(table) != {b"": header, **rows}:
        raise ConversionError(f"{path}: the index written does not read back as written.")
    for shard, size in enumerate(shard_sizes):
        data = bundle.data_path(prefix, shard, len(shard_sizes))
        if fileio.getsize(data) != size:
            raise ConversionError(f"{data}: {fileio.getsize(data)} bytes read back, {size} expected.")


def publish(
    dest: Destination,
    header: bytes,
    rows: dict[bytes, bytes],
    shards: Sequence[tuple[str, int]],
    *,
    new_shard: Optional[Union[bytes, NewShard]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> int:
    """Writes the checkpoint `rows` describe at `dest`, atomically, and makes it the latest.

    Args:
      dest: from `destination`.
      header: the encoded bundle header (its shard count includes `new_shard`).
      rows: every index row but the header, by raw key.
      shards: each data shard in the new numbering, as `(existing data file, its size)`.
      new_shard: one more shard written last, if any: its bytes (an object graph), or a
        `NewShard` of computed tensors whose rows are added to `rows` as it is written.
      progress: as for `convert_checkpoint`, while a shard is copied rather than linked.

    Returns:
      What was done: the bytes copied rather than linked, whether the state file changed.

    Raises:
      DestinationNotWritableError: DST's directory cannot be written (nothing is left there).
    """
    prefix, directory, existing = dest.prefix, dest.directory, dest.existing
    num_shards = len(shards) + (new_shard is not None)
    if isinstance(new_shard, bytes):
        new_shard = _Bytes(new_shard)
    shard_sizes = [size for _, size in shards] + ([new_shard.size] if new_shard is not None else [])
    rows = dict(rows)
    before = _latest_paths(directory)
    tmp = fileio.temp_prefix(prefix)
    created: list[str] = []
    copied = 0
    try:
        with _writable(directory):
            fileio.makedirs(directory)
            fileio.remove_abandoned_temps(directory)
            for new, (source, size) in enumerate(shards):
                target = bundle.data_path(tmp, new, num_shards)
                created.append(target)
                how = fileio.link_or_copy(source, target, progress=progress)
                if how == "copy":
                    copied += size
            if new_shard is not None:
                target = bundle.data_path(tmp, num_shards - 1, num_shards)
                created.append(target)
                fileio.write_new_with(target, lambda f: rows.update(new_shard.write(f)))
            created.append(bundle.index_path(tmp))
            fileio.write_new(bundle.index_path(tmp), bundle.build_index(header, rows.items()))
        verify_written(tmp, header, rows, shard_sizes)
        # Publish: the old index goes first and the new one last, so no half-written DST is ever readable.
        if existing:
            # DST is absent until its new index is in place: meanwhile the state file must not name it,
            # or `tf.train.latest_checkpoint` finds none at all (and an Estimator starts from scratch).
            state_file.drop_entry(directory, prefix)
            fileio.remove(bundle.index_path(prefix))
        finals = []
        for shard in range(num_shards):
            final = bundle.data_path(prefix, shard, num_shards)
            fileio.rename(bundle.data_path(tmp, shard, num_shards), final)
            finals.append(final)
        fileio.rename(bundle.index_path(tmp), bundle.index_path(prefix))
    except BaseException:
        for path in created:
            fileio.remove(path)
        raise
    for stale in existing:
        if stale not in finals and stale != bundle.index_path(prefix):
            fileio.remove(stale)
    # As `Saver.save` does, even in a new directory: so `tf.train.latest_checkpoint` and Estimator find DST.
    state_file.record_latest(directory, prefix)
    return Published(copied, _latest_paths(directory) != before)


def check_file_destination(path: str, *, inputs: Sequence[str], force: bool, on_directory: str) -> None:
    """Refuses a one-file destination that is a directory, an input, or (without `force`) an existing file.

    Args:
      on_directory: what to do instead, said when `path` is a directory.

    Raises:
      ConversionError: `path` is a directory or one of `inputs`.
      DestinationExistsError: `path` exists and `force` is false.
    """
    if fileio.isdir(path):
        raise ConversionError(f"{path}: is a directory; {on_directory}")
    if not fileio.exists(path):
        return
    for read in inputs:
        if fileio.same_file(path, read):
            raise ConversionError(f"{path}: the destination is an input ({read}); choose another path.")
    if not force:
        what = f"Destination {path} already exists"
        raise DestinationExistsError(f"{what}; pass force=True to replace it.").for_cli(
            f"{what}; pass --force to replace it."
        )


def write_file(path: str, write: Callable[[str], None]) -> None:
    """Writes one file atomically: `write(temporary path)` (which creates it), then a rename onto `path`.

    A file already at `path` (the caller checked `force`) is replaced only by the rename.

    Raises:
      DestinationNotWritableError: the directory cannot be written (nothing is left there).
    """
    directory = fileio.dirname(path) or "."
    tmp = fileio.temp_path(path)
    try:
        with _writable(directory):
            fileio.makedirs(directory)
            fileio.remove_abandoned_temps(directory)
            write(tmp)
            fileio.rename(tmp, path)
    except BaseException:
        fileio.remove(tmp)
        raise


class _Bytes:
    """A new shard of bytes already encoded (an object graph): no rows of its own."""

    def __init__(self, data: bytes):
        self.data, self.size = data, len(data)

    def write(self, f) -> dict:
        f.write(self.data)
        return {}


@dataclasses.dataclass(frozen=True)
class Published:
    """What `publish` did.

    Attributes:
      copied_bytes: data copied rather than shared by hard link (remote paths, another file system).
      state_file_updated: whether the `checkpoint` state file now names other checkpoints, or another
        latest one, than before (False when DST replaced, with force, the latest it already named).
    """

    copied_bytes: int
    state_file_updated: bool


def _latest_paths(directory: str) -> Optional[tuple[str, tuple[str, ...]]]:
    state = state_file.read_state(directory)
    return None if state is None else (state.model_checkpoint_path, state.all_model_checkpoint_paths)


@contextlib.contextmanager
def _writable(directory: str) -> Iterator[None]:
    """Says that DST's directory is not writable, rather than naming a hidden temporary file in it."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise DestinationNotWritableError(
            f"{directory}: the destination directory is not writable ({e.strerror or e}); choose a DST in a "
            "writable directory, or make this one writable."
        ) from None


__all__ = [
    "Destination",
    "Published",
    "check_file_destination",
    "check_sources",
    "destination",
    "publish",
    "save_destination",
    "verify_written",
    "write_file",
]
