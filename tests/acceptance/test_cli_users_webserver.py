"""The real CLI for users and the web server: `slipstream users ...`, `slipstream webserver`."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from test_cli_data import run, run_all, run_json


def test_users_lifecycle() -> None:
    run("db", "migrate")
    created = run(
        "users", "create", "-u", "alice", "-r", "op", "-p", "first-password", "-e", "a@x.io"
    )
    assert "alice created with role Op" in created.stdout
    problems = run_all(
        lambda: run(
            "users", "create", "-u", "alice", "-r", "Admin", "-p", "another-pass", ok=False
        ),
        lambda: run("users", "create", "-u", "bob", "-r", "Admin", "-p", "short", ok=False),
        lambda: run("users", "delete", "-u", "nobody", "--yes", ok=False),
        lambda: run(
            "users", "create", "-u", "bad name!", "-r", "Viewer", "-p", "long-enough", ok=False
        ),
    )
    assert "exists already" in problems[0].stderr
    assert "at least 8 characters" in problems[1].stderr
    assert "does not exist" in problems[2].stderr
    assert "not a valid username" in problems[3].stderr
    [alice] = run_json("users", "list")
    assert (alice["username"], alice["role"], alice["email"]) == ("alice", "Op", "a@x.io")
    assert "password" not in json.dumps(alice)
    run("users", "reset-password", "-u", "alice", "-p", "second-password")
    run("users", "delete", "-u", "alice", "--yes")
    assert run_json("users", "list") == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_webserver_serves_the_api_and_refuses_a_taken_port(tmp_path: Path) -> None:
    run("db", "migrate")
    run("users", "create", "-u", "ops", "-r", "Viewer", "-p", "viewer-password")
    port = _free_port()
    log = (tmp_path / "webserver.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "slipstream", "webserver", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, Path(log.name).read_text()
                assert time.monotonic() < deadline, "the web server did not answer"
                time.sleep(0.1)
        token = base64.b64encode(b"ops:viewer-password").decode()
        request = urllib.request.Request(
            f"{base}/dags", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.load(answer) == {"dags": [], "total_entries": 0}
        try:
            urllib.request.urlopen(f"{base}/dags", timeout=5)
            raise AssertionError("an anonymous request was answered")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401
        second = run("webserver", "--port", str(port), ok=False)
        assert f"127.0.0.1:{port} is in use" in second.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        log.close()
    assert f"http://127.0.0.1:{port}" in Path(log.name).read_text()
