"""Where each try's log lives: ``<log folder>/dag_id=D/run_id=R/task_id=T/attempt=N.log``,
the layout Airflow users know. Writers (workers) and readers (CLI, web) share this one rule."""

from __future__ import annotations

from pathlib import Path


def try_log_path(
    log_folder: Path, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
) -> Path:
    folder = log_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    return folder / f"attempt={try_number}.log"
