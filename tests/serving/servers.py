"""Servers in subprocesses for tests (`leadscore serve`, uvicorn workers).

Each server starts in its own session, so it leads a process group of its own with every worker
it forks; `server_process` kills that whole group when the test ends, whatever happened, so a
failed test never leaves uvicorn workers running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(
    command: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen]:
    """Run `command` in a new process group (output to `log`); kill the group at the end."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            list(command),
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """SIGTERM to the server's whole process group, then SIGKILL to whatever is left of it."""
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace_seconds)
    _signal_group(process, signal.SIGKILL)  # workers that outlived their parent, too
    process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(process.pid, signum)  # start_new_session: the group id is the leader's pid


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Wait for the service behind `url` to be started (its port opens first and /readyz says
    "starting" while it loads: serving/boot.py); fail with the server's log if it exits or never
    starts (a hang guard, not a start-up time claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server at {url} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError, ValueError):  # not up yet, or a proxy page
            if httpx.get(url + "/readyz", timeout=1).json().get("reason") != "starting":
                return
        time.sleep(0.1)
    raise AssertionError(f"server at {url} did not start:\n{log.read_text()[-3000:]}")


def wait_for_mlflow(url: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Wait for the `mlflow server` at `url` to answer /health; fail with its log if it exits or
    never answers (a hang guard, not a start-up time claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):  # not up yet
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"mlflow server never answered /health:\n{log.read_text()[-3000:]}")


class SilentRegistry:
    """A model registry that accepts connections and answers nothing until `release()`, then
    hangs up: a registry behind a dead proxy. `connections` counts the requests it holds."""

    def __init__(self, hang_guard_seconds: float = 120) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._released = threading.Event()
        self._hang_guard = hang_guard_seconds
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(self._hang_guard)
            try:
                connection.recv(65536)
            except OSError:
                return
            self._released.wait(self._hang_guard)

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def release(self) -> None:
        """Hang up on every held request, and on every one that comes later."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._listener.close()
