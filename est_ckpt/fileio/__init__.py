"""The one small file-access layer every checkpoint path goes through.

Local paths use plain Python I/O, so local tools never pay for importing
TensorFlow. Any `scheme://` path (`gs://`, `hdfs://`, `s3://`) goes through
`tf.io.gfile`, imported only then.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import secrets
import socket
import stat
import tempfile
from typing import BinaryIO, Callable, Iterator

from est_ckpt.errors import NotARegularFileError, SymlinkLoopError
from est_ckpt.fileio import remote


def is_remote(path: str) -> bool:
    """Returns whether `path` names a `scheme://` location."""
    return "://" in str(path)


def join(path: str, *parts: str) -> str:
    return posixpath.join(path, *parts) if is_remote(path) else os.path.join(path, *parts)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def basename(path: str) -> str:
    return posixpath.basename(path) if is_remote(path) else os.path.basename(path)


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file (the same string, for remote paths)."""
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def exists(path: str) -> bool:
    """Whether `path` exists.

    Raises:
      SymlinkLoopError: local `path` is a loop of symbolic links (`os.path.exists`
        would call it missing, and "no such file" sends a user looking elsewhere).
    """
    if is_remote(path):
        return remote.gfile().exists(path)
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SymlinkLoopError(
                f"symlink loop at {path}: its symbolic links lead back to themselves; fix or remove the link."
            ) from None
        return False
    except ValueError:  # A NUL byte in the path: nothing can exist there.
        return False
    return True


def isdir(path: str) -> bool:
    return remote.gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    return exists(path) and not isdir(path)


def listdir(path: str) -> list[str]:
    if is_remote(path):
        return [name.rstrip("/") for name in remote.gfile().listdir(path)]
    return os.listdir(path)


def getsize(path: str) -> int:
    return remote.gfile().stat(path).length if is_remote(path) else os.path.getsize(path)


def mtime(path: str) -> float:
    if is_remote(path):
        return remote.gfile().stat(path).mtime_nsec / 1e9
    return os.path.getmtime(path)


def open_read(path: str) -> BinaryIO:
    return remote.gfile().GFile(path, "rb") if is_remote(path) else open(path, "rb")


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_range(path: str, offset: int, size: int) -> bytes:
    """Reads `size` bytes at `offset`; fewer only if the file is shorter."""
    with open_read(path) as f:
        f.seek(offset)
        return f.read(size)


def iter_range(path: str, offset: int, size: int, chunk: int = 1 << 22) -> Iterator[bytes]:
    """Yields the bytes of `[offset, offset + size)` in chunks, without holding them all."""
    with open_read(path) as f:
        f.seek(offset)
        while size > 0:
            data = f.read(min(chunk, size))
            if not data:
                return
            size -= len(data)
            yield data


def makedirs(path: str) -> None:
    if is_remote(path):
        remote.gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """Removes a file; a missing file is not an error."""
    try:
        if is_remote(path):
            remote.gfile().remove(path)
        else:
            os.remove(path)
    except (FileNotFoundError, OSError) as e:
        if exists(path):
            raise e


def rename(src: str, dst: str) -> None:
    """Renames `src` onto `dst`, replacing it (atomic on a local filesystem)."""
    if is_remote(src):
        remote.gfile().rename(src, dst, overwrite=True)
    else:
        os.replace(src, dst)
        # POSIX: renaming onto another hard link of the same file does nothing and keeps `src`.
        if os.path.lexists(src) and os.path.samefile(src, dst):
            os.remove(src)


# Every temporary name est_ckpt writes carries this mark, the writer's host and
# pid, and a random tag: `temp_path`'s `<file>.tmp-est-ckpt-<host>-<pid>-<hex>`
# and `temp_prefix`'s `.<prefix>.tmp-est-ckpt-<host>-<pid>-<hex>` (plus `.index` /
# `.data-*`). The pid and tag have fixed forms, so a host with `-` in it parses.
_TEMP_MARK = ".tmp-est-ckpt-"
_TEMP_NAME = re.compile(
    r"\.tmp-est-ckpt-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-[0-9a-f]{8}"
    r"(?:\.(?:index|data-\d{5}-of-\d{5}))?$"
)
_HOST_MAX = 48


def _host_tag() -> str:
    """This host's name for temporary names: a safe charset, bounded, distinct per host name."""
    host = socket.gethostname() or "unknown-host"
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", host)
    if len(tag) > _HOST_MAX:
        # A plain cut could make two long host names one tag, and each host clean the other's temps.
        tag = tag[: _HOST_MAX - 9] + "_" + hashlib.sha256(host.encode("utf-8", "replace")).hexdigest()[:8]
    return tag


def _temp_tag() -> str:
    return f"{_TEMP_MARK}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"


def temp_path(path: str) -> str:
    """A unique temporary name next to file `path`, to write under before renaming into place."""
    return f"{path}{_temp_tag()}"


def temp_prefix(prefix: str) -> str:
    """A hidden, unique checkpoint prefix next to `prefix`, to write under before renaming into place."""
    return join(dirname(prefix) or ".", f".{basename(prefix)}{_temp_tag()}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, under another user.
    return True


def remove_abandoned_temps(directory: str) -> None:
    """Removes the temporary files of this host's est_ckpt writers killed before they finished.

    Hard-linked ones would otherwise keep deleted checkpoints' bytes alive. A
    temporary file is abandoned when it names this host and a process that is
    gone. Temporary files of other hosts are never touched: in a model dir
    shared by several hosts (NFS, a parameter-server cluster) their pids mean
    nothing here. Nor are those of the older pid-only naming: which host wrote
    them cannot be told, and deleting a file in flight would break a conversion,
    while leaving one only costs disk space. Local directories only: a remote
    filesystem has no pids to check.
    """
    if is_remote(directory) or not os.path.isdir(directory):
        return
    host = _host_tag()
    for name in os.listdir(directory):
        m = _TEMP_NAME.search(name)
        if not m or m["host"] != host:
            continue
        pid = int(m["pid"])
        if pid != os.getpid() and not _process_alive(pid):
            remove(os.path.join(directory, name))


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """Adds `path` to an `OSError` that names no file: a write on a full disk says which file it was."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = path
        raise


def write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary name in the same directory."""
    tmp = temp_path(path)
    if is_remote(path):
        with remote.gfile().GFile(tmp, "wb") as f:
            f.write(data)
    else:
        with _naming(tmp), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    rename(tmp, path)


def link_or_copy(src: str, dst: str, progress=None) -> str:
    """Makes `dst` hold the bytes of `src`, sharing them by hard link where possible.

    Returns `"link"` or `"copy"`. The caller must never write through `dst`:
    a hard link shares its bytes with `src`.
    """
    local = not is_remote(src) and not is_remote(dst)
    if local:
        try:
            os.link(src, dst)
            return "link"
        except OSError:
            pass  # Another file system (or one without hard links): copy, as a remote path is.
    total = getsize(src)
    with (
        open_read(src) as fin,
        _naming(dst),
        open(dst, "xb") if local else remote.gfile().GFile(dst, "wb") as fout,
    ):
        done = 0
        while True:
            data = fin.read(1 << 24)
            if not data:
                break
            fout.write(data)
            done += len(data)
            if progress is not None:
                progress(done, total)
    return "copy"


def write_new(path: str, data: bytes) -> None:
    """Writes `data` to `path`, which must not exist yet.

    Locally the file is created with `O_EXCL`, so it is always a fresh inode and
    never a write through an existing (possibly hard-linked) file.
    """
    if is_remote(path):
        with remote.gfile().GFile(path, "wb") as f:
            f.write(data)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with _naming(path), os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_new_with(path: str, writer: Callable[[BinaryIO], None]) -> None:
    """Creates `path` (which must not exist yet) and lets `writer` write it through a local file opened for reading too.

    `writer` may seek, `os.pwrite` and `os.pread` on the file's descriptor. For a
    remote path the file is written in local temporary storage first, then copied up.
    """
    if is_remote(path):
        with tempfile.TemporaryFile() as local:
            writer(local)
            local.flush()
            local.seek(0)
            with remote.gfile().GFile(path, "wb") as f:
                while True:
                    data = local.read(1 << 24)
                    if not data:
                        break
                    f.write(data)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    with _naming(path), os.fdopen(fd, "r+b") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())


def require_regular(path: str, *, directory_ok: bool = True) -> None:
    """Raises `NotARegularFileError` if local `path` exists but is not a regular file (nor, if ok, a directory).

    Call it before opening a path that untrusted input named: opening a FIFO
    blocks until a writer appears, and `/dev/zero` never ends.
    """
    if is_remote(path):
        return
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return  # Missing or unnameable: the caller's own open reports it.
    if not (stat.S_ISREG(mode) or (directory_ok and stat.S_ISDIR(mode))):
        raise NotARegularFileError(errno.EINVAL, "not a regular file", path)
