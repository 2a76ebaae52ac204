"""The `checkpoint` state file of a model directory, read and written as TF does.

The file is TF's `CheckpointState` proto
(`tensorflow/python/training/checkpoint_state.proto`, proto3) in protobuf text
format: `model_checkpoint_path`, then each of `all_model_checkpoint_paths`
(oldest first, the latest last), `all_model_checkpoint_timestamps` and
`last_preserved_timestamp` (`tf.train.CheckpointManager` writes those two).
Paths inside the directory are written relative to it, as `Saver.save` writes
them. `write_state` produces exactly the bytes of TF's
`update_checkpoint_state_internal(..., save_relative_paths=True)`, and the
reader accepts what TF's `text_format.Merge` accepts of this message, except
rarely used escapes (`\\u`, `\\U`, unknown ones) that no writer emits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import time
from typing import Optional, Sequence

from est_ckpt import fileio
from est_ckpt.errors import FormatError

STATE_FILENAME = "checkpoint"

_STRING_FIELDS = ("model_checkpoint_path", "all_model_checkpoint_paths")
_DOUBLE_FIELDS = ("all_model_checkpoint_timestamps", "last_preserved_timestamp")
_REPEATED = ("all_model_checkpoint_paths", "all_model_checkpoint_timestamps")


@dataclasses.dataclass(frozen=True)
class CheckpointState:
    """A `CheckpointState`: the latest prefix, every kept prefix (oldest first), their save times."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: tuple[str, ...] = ()
    all_model_checkpoint_timestamps: tuple[float, ...] = ()
    last_preserved_timestamp: float = 0.0


# -- text format ---------------------------------------------------------------------

# The tokens of protobuf's text-format tokenizer (`google/protobuf/text_format.py`).
_TOKEN = re.compile(
    r"""(?P<space>(?:\s|\#[^\n]*)+)
      | (?P<ident>[A-Za-z_][0-9A-Za-z_+-]*)
      | (?P<number>(?:[0-9+-]|\.[0-9])[0-9A-Za-z_.+-]*)
      | (?P<string>"(?:[^"\n\\]|\\.)*"|'(?:[^'\n\\]|\\.)*')
      | (?P<symbol>[:\[\],;])""",
    re.X,
)
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.S)
_SIMPLE_ESCAPES = {
    "n": 10,
    "t": 9,
    "r": 13,
    "'": 39,
    '"': 34,
    "\\": 92,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
    "?": 63,
}
_KINDS = {"ident": "a field name", "number": "a number", "string": "a string", None: "more"}
_INFINITY = re.compile(r"-?inf(?:inity)?f?", re.I)
_NAN = re.compile(r"nanf?", re.I)
# What protobuf's `CEscape(text, as_utf8=False)` writes for each byte.
_QUOTED = [f"\\{b:03o}" if b < 0x20 or b >= 0x7F else chr(b) for b in range(256)]
_QUOTED[9], _QUOTED[10], _QUOTED[13] = "\\t", "\\n", "\\r"
_QUOTED[ord('"')], _QUOTED[ord("'")], _QUOTED[ord("\\")] = '\\"', "\\'", "\\\\"


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormatError(f"unexpected {text[pos]!r} at offset {pos}")
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def _unquote(literal: str) -> bytes:
    out = bytearray()
    pos, body = 0, literal[1:-1]
    for m in _ESCAPE.finditer(body):
        out += body[pos : m.start()].encode("utf-8")
        octal, hexa, char = m.groups()
        if octal is not None and int(octal, 8) <= 0xFF:
            out.append(int(octal, 8))
        elif hexa is not None:
            out.append(int(hexa, 16))
        elif char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        else:
            raise FormatError(f"unsupported escape {m.group()!r}")
        pos = m.end()
    return bytes(out + body[pos:].encode("utf-8"))


def _float(token: str) -> float:
    # protobuf's `ParseFloat`: Python's float syntax, `inf`/`nan` spellings, a trailing `f`.
    if _INFINITY.fullmatch(token):
        return -math.inf if token.startswith("-") else math.inf
    if _NAN.fullmatch(token):
        return math.nan
    try:
        return float(token.rstrip("f"))
    except ValueError:
        raise FormatError(f"{token!r} is not a number") from None


def parse_state(data: bytes) -> CheckpointState:
    """Decodes the text of a state file.

    Raises:
      FormatError: `data` is not a `CheckpointState` in text format.
    """
    try:
        tokens = _tokens(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError("is not UTF-8 text") from None
    fields: dict[str, list] = {name: [] for name in _STRING_FIELDS + _DOUBLE_FIELDS}
    i = 0

    def take(kind: Optional[str] = None, text: Optional[str] = None) -> str:
        nonlocal i
        if i >= len(tokens) or (kind and tokens[i][0] != kind) or (text and tokens[i][1] != text):
            found = repr(tokens[i][1]) if i < len(tokens) else "the end"
            raise FormatError(f"expected {repr(text) if text else _KINDS[kind]}, found {found}")
        i += 1
        return tokens[i - 1][1]

    def value(name: str):
        if name in _DOUBLE_FIELDS:
            kind = tokens[i][0] if i < len(tokens) else None
            return _float(take("ident" if kind == "ident" else "number"))
        raw = _unquote(take("string"))
        while i < len(tokens) and tokens[i][0] == "string":  # adjacent literals concatenate
            raw += _unquote(take())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{name} is not UTF-8") from None

    while i < len(tokens):
        name = take("ident")
        if name not in fields:
            raise FormatError(f"unknown field {name!r}")
        take("symbol", ":")
        if name in _REPEATED and tokens[i : i + 1] == [("symbol", "[")]:
            take()
            while tokens[i : i + 1] != [("symbol", "]")]:
                fields[name].append(value(name))
                if tokens[i : i + 1] != [("symbol", "]")]:
                    take("symbol", ",")
            take()
        else:
            fields[name].append(value(name))
        if tokens[i : i + 1] in ([("symbol", ",")], [("symbol", ";")]):
            take()
    # A singular field given twice keeps its last value, as `text_format.Merge` does.
    return CheckpointState(
        model_checkpoint_path=(fields["model_checkpoint_path"] or [""])[-1],
        all_model_checkpoint_paths=tuple(fields["all_model_checkpoint_paths"]),
        all_model_checkpoint_timestamps=tuple(fields["all_model_checkpoint_timestamps"]),
        last_preserved_timestamp=(fields["last_preserved_timestamp"] or [0.0])[-1],
    )


# protobuf 5.26 and later (what TF 2.16+ installs) write non-ASCII text as UTF-8, not as octal escapes.
_UTF8_FROM = (5, 26)


@functools.cache
def protobuf_writes_utf8() -> bool:
    """Whether the protobuf installed here writes non-ASCII as UTF-8 (5.26+); False when there is none.

    Read from the installed distribution's version, without importing it.
    """
    from importlib import metadata

    try:
        version = metadata.version("protobuf")
    except metadata.PackageNotFoundError:
        return False
    parts = re.findall(r"\d+", version)[:2]
    return tuple(int(p) for p in parts) >= _UTF8_FROM if len(parts) == 2 else False


def _quote(text: str, utf8: bool) -> str:
    if utf8:
        return '"' + "".join(_QUOTED[ord(c)] if ord(c) < 0x80 else c for c in text) + '"'
    return '"' + "".join(_QUOTED[b] for b in text.encode("utf-8")) + '"'


def encode_state(state: CheckpointState, *, utf8: Optional[bool] = None) -> bytes:
    """The text of `state`, byte for byte as TF's `text_format.MessageToString` writes it.

    Args:
      state: what to write.
      utf8: write non-ASCII as UTF-8 (protobuf 5.26+) rather than octal escapes (earlier); None: as the
        protobuf installed here writes it (`protobuf_writes_utf8`), so the file is the one TF would write.
    """
    utf8 = protobuf_writes_utf8() if utf8 is None else utf8
    lines = []
    if state.model_checkpoint_path:  # proto3: default values are not written
        lines.append(f"model_checkpoint_path: {_quote(state.model_checkpoint_path, utf8)}")
    lines += [f"all_model_checkpoint_paths: {_quote(p, utf8)}" for p in state.all_model_checkpoint_paths]
    lines += [f"all_model_checkpoint_timestamps: {float(t)!r}" for t in state.all_model_checkpoint_timestamps]
    preserved = float(state.last_preserved_timestamp)
    if preserved != 0 or math.copysign(1.0, preserved) < 0:  # -0.0 is not the default
        lines.append(f"last_preserved_timestamp: {preserved!r}")
    return "".join(line + "\n" for line in lines).encode("utf-8")


# -- the file in a directory -----------------------------------------------------------------


def read_state(directory: str) -> Optional[CheckpointState]:
    """Reads `directory`'s state file, with relative paths joined to `directory` as TF's reader does.

    Returns None when there is no usable state file: missing, not a regular
    file (a FIFO would block), unreadable, not in text format, or naming no
    latest checkpoint. TF's `get_checkpoint_state` ignores such files too.
    """
    path = fileio.join(directory, STATE_FILENAME)
    try:
        fileio.require_regular(path, directory_ok=False)
        if not fileio.exists(path):
            return None
        state = parse_state(fileio.read_bytes(path))
    except (OSError, FormatError):
        return None
    if not state.model_checkpoint_path:
        return None

    def resolve(p: str) -> str:
        return p if fileio.is_remote(p) or os.path.isabs(p) else fileio.join(directory, p)

    return dataclasses.replace(
        state,
        model_checkpoint_path=resolve(state.model_checkpoint_path),
        all_model_checkpoint_paths=tuple(resolve(p) for p in state.all_model_checkpoint_paths),
    )


def read_state_file(directory: str) -> list[str]:
    """Returns the prefixes a `checkpoint` state file names, latest last (empty if none)."""
    state = read_state(directory)
    if state is None:
        return []
    latest = state.model_checkpoint_path
    return [p for p in state.all_model_checkpoint_paths if p != latest] + [latest]


def _relative(path: str, directory: str) -> str:
    # As TF: absolute paths become relative to `directory`, and so do relative
    # ones (which include `directory`) when `directory` is relative. (TF makes
    # an absolute path relative twice in that case; once is right.)
    if os.path.isabs(path) or not os.path.isabs(directory):
        return os.path.relpath(path, directory)
    return path


def write_state(
    directory: str,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: Sequence[str] = (),
    *,
    all_model_checkpoint_timestamps: Sequence[float] = (),
    last_preserved_timestamp: float = 0.0,
) -> None:
    """Writes `directory`'s state file atomically, as `Saver.save` does.

    The arguments and the bytes written are those of TF's
    `checkpoint_management.update_checkpoint_state_internal(...,
    save_relative_paths=True)`: the latest prefix is appended to the kept
    ones if it is not their last, and paths become relative to `directory`.

    Raises:
      ValueError: timestamps are given, but not one per kept prefix.
    """
    paths = list(all_model_checkpoint_paths)
    if not paths or paths[-1] != model_checkpoint_path:
        paths.append(model_checkpoint_path)
    if all_model_checkpoint_timestamps and len(all_model_checkpoint_timestamps) != len(paths):
        raise ValueError(
            f"{len(all_model_checkpoint_timestamps)} timestamps given for {len(paths)} checkpoint paths."
        )

    state = CheckpointState(
        _relative(model_checkpoint_path, directory),
        tuple(_relative(p, directory) for p in paths),
        tuple(all_model_checkpoint_timestamps),
        last_preserved_timestamp,
    )
    fileio.write_atomic(fileio.join(directory, STATE_FILENAME), encode_state(state))


def record_latest(directory: str, prefix: str) -> None:
    """Makes `prefix` the latest checkpoint of `directory`'s state file, creating the file if needed.

    The other prefixes it names stay, in order (one naming `prefix` moves to
    the end), with their timestamps if it has one per prefix; the new one is
    stamped now.
    """
    state = read_state(directory)
    if state is None:
        write_state(directory, prefix, [prefix])
        return
    written = _relative(prefix, directory)
    kept = [i for i, p in enumerate(state.all_model_checkpoint_paths) if _relative(p, directory) != written]
    paths = [state.all_model_checkpoint_paths[i] for i in kept] + [prefix]
    stamps: list[float] = []
    if len(state.all_model_checkpoint_timestamps) == len(state.all_model_checkpoint_paths) > 0:
        stamps = [state.all_model_checkpoint_timestamps[i] for i in kept] + [time.time()]
    write_state(
        directory,
        prefix,
        paths,
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=state.last_preserved_timestamp,
    )


def drop_entry(directory: str, prefix: str) -> bool:
    """Removes `prefix` from `directory`'s state file; a file left naming nothing is removed.

    For the moment a checkpoint is replaced in place: while its index is gone
    the state file must not name it, or `tf.train.latest_checkpoint` finds none
    at all (TF also refuses a state file that names no checkpoint).

    Returns:
      Whether the state file changed.
    """
    state = read_state(directory)
    if state is None:
        return False
    dropped = _relative(prefix, directory)
    kept = [i for i, p in enumerate(state.all_model_checkpoint_paths) if _relative(p, directory) != dropped]
    if _relative(state.model_checkpoint_path, directory) != dropped and len(kept) == len(
        state.all_model_checkpoint_paths
    ):
        return False
    if not kept:
        fileio.remove(fileio.join(directory, STATE_FILENAME))
        return True
    paths = [state.all_model_checkpoint_paths[i] for i in kept]
    stamps: list[float] = []
    if len(state.all_model_checkpoint_timestamps) == len(state.all_model_checkpoint_paths):
        stamps = [state.all_model_checkpoint_timestamps[i] for i in kept]
    write_state(
        directory,
        paths[-1],
        paths,
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=state.last_preserved_timestamp,
    )
    return True
