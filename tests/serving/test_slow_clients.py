"""Slow and vanishing clients against a real `leadscore serve` (uvicorn, httptools): a header
that never completes gets 408 and a closed connection, a body that never completes gets 408, and
a client that hangs up mid-body costs one log line and a counter, not a traceback."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import BOOTSTRAP, KEYS, UNREACHABLE_REGISTRY
from tests.serving.servers import free_port, server_process, wait_until_up
from tests.serving.waiting import HANG_GUARD_SECONDS, wait_for

LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": UNREACHABLE_REGISTRY,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "LEADSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'leadscore.db'}",
        "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
        "LEADSCORE_MODEL_RETRY_SECONDS": "3600",
        "LEADSCORE_HEADER_TIMEOUT_SECONDS": "1",
        "LEADSCORE_BODY_TIMEOUT_SECONDS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "server.log"
    command = [LEADSCORE, "serve", "--port", str(port)]
    with server_process(command, env=env, cwd=tmp_path, log=log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process, log)
        yield port, url, log


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(HANG_GUARD_SECONDS)  # a hang guard: the server closes long before
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.slow
def test_a_header_that_never_completes_gets_408_and_is_closed(server):
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nX-Slow: a")  # never finished
        answer = _read_all(sock)  # returns when the server closes the connection
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert answer.endswith(b"request header not received in time\r\n")
    with socket.create_connection(("127.0.0.1", port)) as sock:  # says nothing at all
        assert _read_all(sock).startswith(b"HTTP/1.1 408")


@pytest.mark.slow
def test_a_body_that_never_completes_gets_408(server):
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/score HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + KEYS["scorer"].encode() + b"\r\n"
            b"content-length: 1000\r\n\r\n" + b'{"leads": ['
        )
        answer = _read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"application/problem+json" in head
    assert b"did not arrive within 1 s (11 bytes received)" in body


@pytest.mark.slow
def test_a_client_hanging_up_mid_body_is_one_log_line(server):
    port, url, log = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + KEYS["scorer"].encode() + b"\r\n"
            b"content-length: 5000\r\n\r\n" + b'{"outcomes": [{"lead_id": "L-1", '
        )
        time.sleep(0.2)  # the route is reading the body now
    line = "client disconnected before sending the whole body: POST /v1/outcomes"
    wait_for(lambda: line in log.read_text(), "the disconnect is logged")
    text = log.read_text()
    assert text.count(line) == 1
    assert "Traceback" not in text and "Exception in ASGI application" not in text
    metrics = httpx.get(url + "/metrics").text
    assert (
        'leadscore_http_client_disconnects_total{method="POST",route="/v1/outcomes"} 1.0' in metrics
    )
