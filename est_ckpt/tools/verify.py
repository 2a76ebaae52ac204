"""`verify_checkpoint`: check a checkpoint's every byte without TensorFlow.

Verification is the format layer's one reader in its checked mode
(`reader.read_bundle(prefix, problems=...)`): it walks the index table block by
block, so one damaged block does not hide the problems of the others, and
checks the header and every entry's shard, offset and size. Then it checks
every tensor's CRC32C (each part of a partitioned variable on its own), how
the parts of a partitioned variable tile it, and the object graph. It never
hands an offset or size to TensorFlow: it does not use TensorFlow at all.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, EstCkptError
from est_ckpt.format import bundle, checkpoint, object_graph, reader, tensors
from est_ckpt.format.problems import Problems

# More lines than this say nothing more to a reader; the rest are counted.
MAX_PROBLEMS = 200
# Numeric tensors larger than this are checksummed in chunks rather than read whole.
STREAM_THRESHOLD = tensors.STREAM_THRESHOLD


@dataclasses.dataclass
class VerifyReport:
    """What `verify_checkpoint` found.

    Attributes:
      path: the path as given.
      prefix: the checkpoint prefix that was verified (None when `path` names
        no checkpoint prefix at all, e.g. a file that is not part of one).
      problems: one line per problem, each naming the file it is about.
      tensors_checked: how many stored tensors (partitions counted one by
        one) passed their CRC32C check.
      bytes_checked: how many stored tensor bytes those hold.
    """

    path: str
    prefix: Optional[str]
    problems: list[str] = dataclasses.field(default_factory=list)
    tensors_checked: int = 0
    bytes_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether the checkpoint is sound (no problem was found)."""
        return not self.problems


def verify_checkpoint(path: str) -> VerifyReport:
    """Checks the checkpoint at `path` and reports every problem it can find.

    Args:
      path: a model directory, a checkpoint prefix, or its `.index` / `.data-*`
        file. For a directory, the `checkpoint` state file is checked too (it
        must name only checkpoints that exist), then its latest checkpoint is
        verified (the newest one on disk if none is complete).

    Returns:
      A `VerifyReport`; `report.ok` is True when no problem was found.

    Raises:
      CheckpointNotFoundError: nothing at `path` is or names a checkpoint.
    """
    path = str(path)
    problems = Problems(limit=MAX_PROBLEMS)
    prefix = _resolve(path, problems)
    report = VerifyReport(path=path, prefix=prefix)
    if prefix is not None:
        b = reader.read_bundle(prefix, problems=problems)
        if b is not None:
            _check_bundle(b, problems, report)
    report.problems = problems.lines()
    return report


def _resolve(path: str, problems: Problems) -> Optional[str]:
    if fileio.isdir(path):
        state = fileio.join(path, checkpoint.STATE_FILENAME)
        for named in checkpoint.read_state_file(path):
            if not fileio.exists(bundle.index_path(named)):
                problems.add(f"{state}: names checkpoint '{named}', whose .index does not exist")
    try:
        return checkpoint.resolve_checkpoint(path)
    except CheckpointNotFoundError:
        # No checkpoint here is complete: verify the newest, to say what is wrong with it.
        newest = checkpoint.prefixes_on_disk(path) if fileio.isdir(path) else []
        if not newest:
            if problems:
                # Nothing to verify, but the state file's dangling names are why: say both in one error.
                raise CheckpointNotFoundError(
                    f"{path}: directory holds no checkpoint; " + "; ".join(problems.lines())
                ) from None
            raise
        return newest[0]
    except EstCkptError as e:
        problems.add(str(e))
        return None


def _check_bundle(b: bundle.Bundle, problems: Problems, report: VerifyReport) -> None:
    """Checks what the checked reader does not read: every tensor's bytes, the partitions, the object graph."""
    index = bundle.index_path(b.prefix)
    stored = [(e, f"'{e.key}'", e.key.encode("utf-8")) for e in b.entries.values() if not e.slices]
    stored += [(p.entry, f"slice {list(p.extents)} of '{p.name}'", p.raw_key) for p in b.slice_entries]
    for entry, what, raw_key in stored:
        if raw_key not in b.damaged:
            _check_data(b, entry, what, problems, report)
    parts: dict[str, list[bundle.SliceEntry]] = {}
    for part in b.slice_entries:
        parts.setdefault(part.name, []).append(part)
    for entry in b.entries.values():
        if entry.slices:
            for line in tensors.slice_problems(entry, parts.get(entry.key, [])):
                problems.add(f"{index}: {line}")
    graph = checkpoint.read_object_graph(b, problems=problems)
    if graph is not None:
        for node_id, key in object_graph.dangling_keys(graph, b.entries):
            problems.add(
                f"{index}: the object graph names '{key}' (node {node_id}), which the index does not hold"
            )


def _check_data(
    b: bundle.Bundle, entry: bundle.Entry, what: str, problems: Problems, report: VerifyReport
) -> None:
    """Reads one stored tensor, checks its CRC32C and that it decodes."""
    try:
        tensors.check_tensor(b, entry, stream_threshold=STREAM_THRESHOLD)
    except EstCkptError as e:
        problems.add(str(e).replace(f"'{entry.key}'", what, 1))
        return
    except OSError as e:
        problems.add(f"{b.data_path(entry.shard_id)}: {what} cannot be read: {e}")
        return
    report.tensors_checked += 1
    report.bytes_checked += entry.size
