"""`connections add --conn-json` through the real CLI: stored, read back, masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_add_a_connection_from_json(tmp_path: Path) -> None:
    env = {**os.environ, "SLIPSTREAM_HOME": str(tmp_path / "home")}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "slipstream", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in result.stdout + result.stderr
        assert (result.returncode == 0) is ok, result.stdout + result.stderr
        return result

    cli("db", "migrate")
    spec = {"conn_type": "http", "host": "api.example.com", "password": "tok3n-value", "port": 443}
    cli("connections", "add", "api", "--conn-json", json.dumps(spec))
    shown = json.loads(cli("connections", "get", "api", "-o", "json").stdout)
    assert (shown["conn_type"], shown["host"], shown["port"]) == ("http", "api.example.com", 443)
    assert shown["password"] == "***"
    secret = json.loads(cli("connections", "get", "api", "--show-secrets", "-o", "json").stdout)
    assert secret["password"] == "tok3n-value"
    bad = cli("connections", "add", "other", "--conn-json", "{oops", ok=False)
    assert bad.stderr.startswith("Error: --conn-json is not valid JSON")
