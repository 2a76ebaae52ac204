"""A real S3-compatible object store on loopback, for the remote model-dir tests.

`S3Server` runs moto's S3 server (`python -m moto.server`) in its own process
on 127.0.0.1, creates one bucket, and stops the process again. TensorFlow
reaches it through tensorflow-io's `s3://` filesystem plugin, pointed there by
the environment in `S3Server.env` (`S3_ENDPOINT` and dummy credentials). The
server's access log (one line per request, in order) is kept, so a test can see
the order in which objects were written.

Why S3 and not `gs://`: see docs/remote.md.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Optional

# moto imports all its services' models lazily, but a cold start on a busy
# 2-core machine still takes seconds; this bounds the wait, not the usual case.
START_TIMEOUT = 60.0
_REQUEST = re.compile(r'"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/[\d.]+" (\d{3})')
# werkzeug colours some log lines (by status) even when they go to a file.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# moto accepts any credentials; the clients need some to sign their requests.
_KEY = "testing"
_REGION = "us-east-1"
# Loopback needs no proxy, and a user's proxy settings must not reroute it.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerUnavailable(RuntimeError):
    """The object-store server could not be started (a missing package, or it never answered)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server in a child process on 127.0.0.1, holding bucket `bucket`."""

    def __init__(self, bucket: str = "est-ckpt"):
        self.bucket = bucket
        self.endpoint: Optional[str] = None
        self._process: Optional[subprocess.Popen] = None
        self._log = tempfile.NamedTemporaryFile(prefix="moto-server-", suffix=".log", delete=False)

    @property
    def env(self) -> dict:
        """The environment that points tensorflow-io's S3 client (and any child process) at the server."""
        return {
            "S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": _KEY,
            "AWS_SECRET_ACCESS_KEY": _KEY,
            "AWS_REGION": _REGION,
            # No instance-metadata probing for credentials or region: there is no cloud here.
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }

    def url(self, *parts: str) -> str:
        """`s3://<bucket>/<parts joined by />`."""
        return "/".join([f"s3://{self.bucket}", *parts])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Starts the server and creates the bucket, or raises `ServerUnavailable` saying why.

        A port picked free can be taken before the server binds it, so a server
        that exits at once is tried again on another port.
        """
        try:
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> None:
        for _ in range(3):
            port = _free_port()
            self.endpoint = f"http://127.0.0.1:{port}"
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            while time.monotonic() < deadline and self._process.poll() is None:
                if self._answers():
                    self._create_bucket()
                    return
                time.sleep(0.2)
            if self._process.poll() is None:
                break
        status = (
            "no answer in time" if self._process.poll() is None else f"exit code {self._process.returncode}"
        )
        raise ServerUnavailable(
            f"moto's S3 server did not start on {self.endpoint} ({status}): {self._log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            with _NO_PROXY.open(self.endpoint + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def _create_bucket(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
        with _NO_PROXY.open(request, timeout=10):
            pass

    def _log_tail(self, lines: int = 5) -> str:
        with open(self._log.name, errors="replace") as f:
            return " | ".join(_ANSI.sub("", f.read()).strip().splitlines()[-lines:]) or "(no output)"

    def requests(self) -> list[tuple[str, str, int]]:
        """`(method, path, status)` of every request the server answered so far, in order."""
        with open(self._log.name, errors="replace") as f:
            text = _ANSI.sub("", f.read())
        return [(m, p, int(s)) for m, p, s in _REQUEST.findall(text)]

    def client(self):
        """A boto3 S3 client of the server: to list what the store holds, and fetch big objects in one GET."""
        import boto3  # noqa: PLC0415 - a dependency of moto, needed only once the server runs.

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=_REGION,
            aws_access_key_id=_KEY,
            aws_secret_access_key=_KEY,
        )

    def objects(self, prefix: str) -> dict[str, int]:
        """Every object under `s3://<bucket>/<prefix>/` by its name below `prefix/`, with its size."""
        out = {}
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix + "/")
        )
        for page in pages:
            for o in page.get("Contents", []):
                # Keys ending in "/" are the directory markers of tf.io.gfile.makedirs, not files.
                if not o["Key"].endswith("/"):
                    out[o["Key"][len(prefix) + 1 :]] = o["Size"]
        return out

    def download(self, prefix: str, directory) -> str:
        """Fetches every object under `prefix/` whole (one GET each) into local `directory`; returns it."""
        client = self.client()
        for name in self.objects(prefix):
            path = os.path.join(directory, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            client.download_file(self.bucket, f"{prefix}/{name}", path)
        return str(directory)

    def stop(self) -> None:
        """Stops the server process (terminate, then kill after a bounded wait)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        """Stops the server and removes its log."""
        self.stop()
        self._log.close()
        os.unlink(self._log.name)
