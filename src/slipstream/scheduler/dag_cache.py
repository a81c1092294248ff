"""Serialized DAGs by version id, read once: a version never changes, so the cache needs no
invalidation, only a bound on its size."""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy.orm import Session

from slipstream.serialization import SerializedDag
from slipstream.store import dags as dag_store


class DagCache:
    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[int, SerializedDag] = OrderedDict()

    def get(self, session: Session, version_id: int) -> SerializedDag | None:
        dag = self._items.get(version_id)
        if dag is not None:
            self._items.move_to_end(version_id)
            return dag
        version = dag_store.get_version(session, version_id)
        if version is None:
            return None
        dag = SerializedDag.from_dict(version.data)
        self._items[version_id] = dag
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return dag
