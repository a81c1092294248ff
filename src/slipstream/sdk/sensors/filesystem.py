"""``FileSensor``: waits for a file, or a directory with files in it, to appear."""

from __future__ import annotations

import glob
import os
from typing import Any

from slipstream.errors import ConnectionNotFound
from slipstream.sdk.connection import Connection
from slipstream.sdk.context import Context
from slipstream.sdk.sensors.base import BaseSensorOperator


def path_has_files(pattern: str, *, recursive: bool = False) -> bool:
    """True when ``pattern`` (a path or a glob) matches a file, or a directory holding one
    anywhere below it: Airflow's FileSensor rule (an empty directory does not count)."""
    for path in glob.iglob(pattern, recursive=recursive):
        if os.path.isfile(path):
            return True
        for _, _, files in os.walk(path):
            if files:
                return True
    return False


class FileSensor(BaseSensorOperator):
    """Waits until ``filepath`` (templated; glob patterns allowed, ``**`` with
    ``recursive=True``) matches a file or a non-empty directory.

    A relative ``filepath`` is taken below the ``path`` extra of the ``fs_conn_id``
    connection, as Airflow's ``fs`` connection does. When that connection does not exist the
    path is used as it is, so the default ``fs_default`` needs no setting up.
    """

    template_fields = ("filepath",)
    ui_color = "#91818a"

    def __init__(
        self,
        *,
        filepath: str | os.PathLike[str],
        fs_conn_id: str = "fs_default",
        recursive: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filepath = os.fspath(filepath)
        self.fs_conn_id = fs_conn_id
        self.recursive = recursive

    def base_path(self) -> str:
        """The ``path`` extra of the ``fs_conn_id`` connection, or "" when there is none."""
        try:
            conn = Connection.get(self.fs_conn_id)
        except ConnectionNotFound:
            return ""
        return str(conn.extra_dejson.get("path", ""))

    def poke(self, context: Context) -> bool:
        # an absolute filepath wins over the base path, as os.path.join has it
        full_path = os.path.join(self.base_path(), self.filepath)
        print(f"Poking for file {full_path}")
        return path_has_files(full_path, recursive=self.recursive)
