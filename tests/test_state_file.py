"""The `checkpoint` state file: our reader and writer against TF's own, byte for byte."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from est_ckpt.errors import FormatError
from est_ckpt.format import state_file
from est_ckpt.format.state_file import CheckpointState
from tests import fixtures as fx


@pytest.fixture(scope="module")
def tf():
    tf, _ = fx._tf()
    return tf


def _tf_state(tf, state: CheckpointState):
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState as Proto

    return Proto(
        model_checkpoint_path=state.model_checkpoint_path,
        all_model_checkpoint_paths=state.all_model_checkpoint_paths,
        all_model_checkpoint_timestamps=state.all_model_checkpoint_timestamps,
        last_preserved_timestamp=state.last_preserved_timestamp,
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# Names as they occur, and the characters text format must escape.
NAMES = [
    "model.ckpt-1",
    "sub/model.ckpt-7",
    "q\"uo'te",
    "back\\slash",
    "new\nline\ttab",
    "caf\u00e9 \u6a21\u578b",
    "\x01\x7f",
]


@pytest.mark.parametrize("absolute", [False, True], ids=["relative_dir", "absolute_dir"])
@pytest.mark.parametrize("name", NAMES)
def test_written_bytes_are_tfs(tf, tmp_path, monkeypatch, absolute, name):
    """`write_state` writes exactly what TF's `update_checkpoint_state(_internal)` writes for the same inputs."""
    from tensorflow.python.checkpoint import checkpoint_management

    monkeypatch.chdir(tmp_path)
    ours, theirs = ("ours", "theirs") if not absolute else (str(tmp_path / "ours"), str(tmp_path / "theirs"))
    stamps = [1700000000.25, 1700000001.125]
    for directory in (ours, theirs):
        os.makedirs(directory)
    kept = [os.path.join(d, "model.ckpt-0") for d in (ours, theirs)]
    latest = [os.path.join(d, name) for d in (ours, theirs)]
    state_file.write_state(
        ours,
        latest[0],
        [kept[0], latest[0]],
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=3.5,
    )
    # What `Saver.save` and `CheckpointManager` call.
    checkpoint_management.update_checkpoint_state_internal(
        theirs,
        latest[1],
        [kept[1], latest[1]],
        save_relative_paths=True,
        all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=3.5,
    )
    assert _read(f"{ours}/checkpoint") == _read(f"{theirs}/checkpoint")
    if not absolute:  # The public function agrees where it writes relative paths too.
        checkpoint_management.update_checkpoint_state(theirs, latest[1], [kept[1]])
        state_file.write_state(ours, latest[0], [kept[0]])
        assert _read(f"{ours}/checkpoint") == _read(f"{theirs}/checkpoint")
    got = tf.train.get_checkpoint_state(ours)
    assert got.model_checkpoint_path == os.path.join(ours, name)


def test_tf_finds_the_latest_checkpoint_we_name(ckpts, tf, tmp_path):
    """`tf.train.latest_checkpoint` and `get_checkpoint_state` read our file as we wrote it."""
    prefix = ckpts.prefix("tf1")
    directory = os.path.dirname(prefix)
    state_file.write_state(str(tmp_path), prefix, [prefix])  # outside the directory: a relative path up
    assert tf.train.latest_checkpoint(str(tmp_path)) == os.path.join(
        str(tmp_path), os.path.relpath(prefix, tmp_path)
    )
    assert os.path.samefile(tf.train.latest_checkpoint(str(tmp_path)) + ".index", prefix + ".index")
    state = tf.train.get_checkpoint_state(directory)
    assert state_file.read_state(directory).model_checkpoint_path == state.model_checkpoint_path


def test_we_read_what_checkpoint_manager_writes(tf, tmp_path):
    """A state file of `tf.train.CheckpointManager` (timestamps included) reads as TF reads it, and stays TF's after an update."""
    v = tf.Variable(1.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path), max_to_keep=3)
    saved = [manager.save() for _ in range(3)]
    theirs = tf.train.get_checkpoint_state(str(tmp_path))
    ours = state_file.read_state(str(tmp_path))
    assert ours.model_checkpoint_path == theirs.model_checkpoint_path == saved[-1]
    assert list(ours.all_model_checkpoint_paths) == list(theirs.all_model_checkpoint_paths) == saved
    assert list(ours.all_model_checkpoint_timestamps) == list(theirs.all_model_checkpoint_timestamps)
    assert len(ours.all_model_checkpoint_timestamps) == 3
    state_file.record_latest(str(tmp_path), saved[0])
    after = tf.train.get_checkpoint_state(str(tmp_path))
    assert list(after.all_model_checkpoint_paths) == saved[1:] + saved[:1]
    assert list(after.all_model_checkpoint_timestamps)[:2] == list(theirs.all_model_checkpoint_timestamps)[1:]
    assert (
        tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path), 3).latest_checkpoint == saved[0]
    )


PARSE_CASES = {
    "tf": b'model_checkpoint_path: "b"\nall_model_checkpoint_paths: "a"\nall_model_checkpoint_paths: "b"\n',
    "comments and one line": b'# written by hand\nmodel_checkpoint_path: "a" all_model_checkpoint_paths: "a" # end',
    "single quotes, adjacent literals": b"model_checkpoint_path: 'a' \"b\"\n",
    "escapes": b'model_checkpoint_path: "\\101\\x42\\n\\t\\"\\\'\\\\\\303\\251"\n',
    "lists and separators": b'all_model_checkpoint_paths: ["a", "b"]; model_checkpoint_path: "b",\n',
    "empty list": b'model_checkpoint_path: "a" all_model_checkpoint_paths: []',
    "floats": b'model_checkpoint_path: "a" all_model_checkpoint_timestamps: [1, 2.5f, inf, -Infinity, nan, 1e3]',
    "last value wins": b'model_checkpoint_path: "a"\nmodel_checkpoint_path: "b"\nlast_preserved_timestamp: 4',
    "empty": b"",
    "unknown field": b'model_checkpoint_path: "a"\nbogus: 1\n',
    "no colon": b'model_checkpoint_path "a"\n',
    "list for a singular field": b'model_checkpoint_path: ["a"]\n',
    "a tuple": b'model_checkpoint_path: "a", "b"\n',
    "unterminated": b'model_checkpoint_path: "a\n',
    "not UTF-8 inside": b'model_checkpoint_path: "\\377"\n',
    "not UTF-8 text": b'model_checkpoint_path: "a"\n' + bytes(range(128, 256)),
    "number for a string": b"model_checkpoint_path: 3\n",
    "string for a number": b'last_preserved_timestamp: "3"\n',
}


@pytest.mark.parametrize("text", PARSE_CASES.values(), ids=PARSE_CASES.keys())
def test_parses_as_tfs_text_format(tf, text):
    """Our parser accepts what protobuf's `text_format.Merge` (TF's reader) accepts, with the same values."""
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState as Proto

    proto = Proto()
    try:
        text_format.Merge(text.decode("utf-8"), proto)
    except (text_format.ParseError, UnicodeDecodeError):
        with pytest.raises(FormatError):
            state_file.parse_state(text)
        return
    ours = state_file.parse_state(text)
    assert ours.model_checkpoint_path == proto.model_checkpoint_path
    assert list(ours.all_model_checkpoint_paths) == list(proto.all_model_checkpoint_paths)
    assert [repr(t) for t in ours.all_model_checkpoint_timestamps] == [
        repr(t) for t in proto.all_model_checkpoint_timestamps
    ]
    assert repr(ours.last_preserved_timestamp) == repr(proto.last_preserved_timestamp)


@given(
    latest=st.text(max_size=20),
    paths=st.lists(st.text(max_size=20), max_size=3),
    stamps=st.lists(st.floats(allow_nan=False), max_size=3),
    preserved=st.floats(allow_nan=False),
)
def test_encoding_is_tfs_and_round_trips(tf, latest, paths, stamps, preserved):
    """Any state encodes to TF's `text_format.MessageToString` bytes and parses back to itself."""
    from google.protobuf import text_format

    state = CheckpointState(latest, tuple(paths), tuple(stamps), preserved)
    data = state_file.encode_state(state)
    assert data == text_format.MessageToString(_tf_state(tf, state)).encode("utf-8")
    back = state_file.parse_state(data)
    assert back.model_checkpoint_path == latest and back.all_model_checkpoint_paths == tuple(paths)
    assert back.all_model_checkpoint_timestamps == tuple(stamps)
    assert back.last_preserved_timestamp == preserved or (
        preserved == 0 and not math.copysign(1, preserved) < 0
    )


def test_unusable_files_are_no_state(tmp_path):
    """A missing, unparsable or latest-less state file, or a directory in its place, reads as no state at all."""
    assert state_file.read_state(str(tmp_path)) is None and state_file.read_state_file(str(tmp_path)) == []
    for text in (b"garbage: 1\n", b'all_model_checkpoint_paths: "a"\n'):
        (tmp_path / "checkpoint").write_bytes(text)
        assert state_file.read_state(str(tmp_path)) is None
    (tmp_path / "checkpoint").unlink()
    (tmp_path / "checkpoint").mkdir()
    assert state_file.read_state(str(tmp_path)) is None


@pytest.mark.parametrize("where", ["absolute", "cwd"])
def test_record_latest_creates_and_appends(tmp_path, monkeypatch, where):
    """`record_latest` starts a state file, then moves a prefix named again to the end; paths stay relative."""
    d = str(tmp_path)
    if where == "cwd":  # `convert_checkpoint(src, "model")`: the directory is "."
        monkeypatch.chdir(tmp_path)
        d = "."
    for name in ("a", "b", "a"):
        state_file.record_latest(d, name if d == "." else os.path.join(d, name))
    assert _read(os.path.join(d, "checkpoint")) == (
        b'model_checkpoint_path: "a"\nall_model_checkpoint_paths: "b"\nall_model_checkpoint_paths: "a"\n'
    )
    assert state_file.read_state_file(d) == [os.path.join(d, "b"), os.path.join(d, "a")]


@pytest.mark.parametrize(
    "utf8,expected",
    [
        # What protobuf's text_format.MessageToString wrote for this path, measured with each version.
        (
            False,
            'model_checkpoint_path: "m\\303\\266del\\001\\"\\177/ckpt-\\360\\237\\230\\200"\n',
        ),  # 3.20, 4.25
        (True, 'model_checkpoint_path: "m\u00f6del\\001\\"\\177/ckpt-\U0001f600"\n'),  # 5.26 to 7.36
    ],
)
def test_non_ascii_is_written_as_each_protobuf_writes_it(utf8, expected):
    """protobuf 5.26+ (TF 2.16+) writes non-ASCII as UTF-8, earlier ones as octal escapes; both read back."""
    path = 'm\u00f6del\x01"\x7f/ckpt-\U0001f600'
    data = state_file.encode_state(CheckpointState(path, (), (), 0.0), utf8=utf8)
    assert data == expected.encode("utf-8")
    assert state_file.parse_state(data + b'all_model_checkpoint_paths: "x"\n').model_checkpoint_path == path


def test_the_installed_protobuf_decides_the_default():
    """Without `utf8=`, the state file is written as the protobuf installed here would write it."""
    from importlib import metadata

    try:
        version = tuple(int(p) for p in metadata.version("protobuf").split(".")[:2])
    except metadata.PackageNotFoundError:
        version = None
    state = CheckpointState("\u00e9", ("\u00e9",), (), 0.0)
    assert state_file.encode_state(state) == state_file.encode_state(
        state, utf8=version is not None and version >= (5, 26)
    )
