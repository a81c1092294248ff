"""The executor contract: one small interface, one implementation per queue technology.

The scheduler decides *what* runs and writes it to the database as queued; an executor
only carries the news to the workers (:meth:`Executor.submit`) and brings back word of what
changed (:meth:`Executor.events`). A :class:`Workload` names a try, never carries it: the
worker reads the rest from the database and claims the try there by compare-and-set, so a
duplicated or late message can run nothing twice.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Workload:
    """The message for one try: ids and the try number, never ORM objects or secrets."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int = -1
    queue: str = "default"
    priority_weight: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Workload:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class TaskEvent:
    """Word that a try ended (or changed state) in a run: the scheduler looks at that run.

    An event with an empty ``dag_id`` says only that something new may be due (a run was
    triggered, a DAG unpaused or parsed): the scheduler looks for new work everywhere.
    """

    dag_id: str
    run_id: str
    task_id: str = ""
    try_number: int = 0
    state: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskEvent:
        return cls(**json.loads(text))


class Executor(ABC):
    """What the scheduler needs from a work queue."""

    @abstractmethod
    def start(self) -> None:
        """Get ready to submit and to receive events."""

    @abstractmethod
    def submit(self, workloads: Sequence[Workload]) -> None:
        """Deliver tries the scheduler has just marked queued (in a committed transaction)."""

    @abstractmethod
    def fileno(self) -> int:
        """A file descriptor that becomes readable when events may be waiting."""

    @abstractmethod
    def events(self) -> list[TaskEvent]:
        """The events received since the last call, oldest first; never blocks."""

    @abstractmethod
    def stop(self) -> None:
        """Release what :meth:`start` took. Queued work stays queued for the next scheduler."""
