"""``BashOperator``: run a bash command; its last line of output is the task's XCom."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

from slipstream.errors import SlipstreamError, SlipstreamSkipException
from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context


class BashCommandFailed(SlipstreamError):
    pass


class BashOperator(BaseOperator):
    template_fields = ("bash_command", "env", "cwd")
    template_fields_renderers = {"bash_command": "bash", "env": "json"}
    template_ext = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(
        self,
        *,
        bash_command: str,
        env: dict[str, str] | None = None,
        append_env: bool = False,
        output_encoding: str = "utf-8",
        skip_on_exit_code: int | list[int] | None = 99,
        cwd: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bash_command = bash_command
        self.env = env
        self.append_env = append_env
        self.output_encoding = output_encoding
        if skip_on_exit_code is None:
            self.skip_on_exit_code: list[int] = []
        elif isinstance(skip_on_exit_code, int):
            self.skip_on_exit_code = [skip_on_exit_code]
        else:
            self.skip_on_exit_code = list(skip_on_exit_code)
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def _environment(self, context: Context) -> dict[str, str]:
        env = dict(os.environ) if self.env is None or self.append_env else {}
        if self.env:
            env.update({str(k): str(v) for k, v in self.env.items()})
        ti = context.get("ti")
        env.update(
            SLIPSTREAM_CTX_DAG_ID=self.dag_id,
            SLIPSTREAM_CTX_TASK_ID=self.task_id,
            SLIPSTREAM_CTX_RUN_ID=str(context.get("run_id", "")),
            SLIPSTREAM_CTX_LOGICAL_DATE=str(context.get("ts", "")),
            SLIPSTREAM_CTX_TRY_NUMBER=str(getattr(ti, "try_number", "")),
        )
        return env

    def execute(self, context: Context) -> Any:
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise BashCommandFailed(f"cwd {self.cwd!r} of task {self.task_id!r} is not a directory")
        print(f"Running command: {self.bash_command}", flush=True)
        self._process = subprocess.Popen(
            ["bash", "-c", self.bash_command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._environment(context),
            cwd=self.cwd,
            start_new_session=True,  # its own group, so on_kill can stop every child it spawned
        )
        last_line = ""
        assert self._process.stdout is not None
        with self._process.stdout as output:  # closed when done: no leaked pipe
            for raw in iter(output.readline, b""):
                line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip()
                last_line = line
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        code = self._process.wait()
        self._process = None
        print(f"Command exited with return code {code}", flush=True)
        if code in self.skip_on_exit_code:
            raise SlipstreamSkipException(f"bash command returned exit code {code}: task skipped")
        if code != 0:
            raise BashCommandFailed(f"bash command failed: it returned exit code {code}")
        return last_line

    def on_kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
