"""What the web UI shows of DAGs and runs (``service.overview``), on SQLite and PostgreSQL:
a real DAG file parsed by the DAG processor, runs triggered through the service, task
states moved with the store's own writes."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from slipstream.config import Config, load_config
from slipstream.dag_processor import DagProcessor
from slipstream.errors import DagNotFound, DagRunNotFound, InvalidInputError, TaskNotFound
from slipstream.service import overview
from slipstream.service.runs import trigger_dag
from slipstream.states import DagRunState, TaskInstanceState
from slipstream.store import runs as run_store
from slipstream.store import task_instances as ti_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.schema import migrate
from slipstream.store.task_instances import TIKey

S = TaskInstanceState
T0 = datetime(2024, 5, 1, tzinfo=UTC)

SHOP = """
from datetime import datetime, timedelta
from slipstream import DAG, TaskGroup
from slipstream.operators import BashOperator, EmptyOperator

with DAG("shop", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    start = EmptyOperator(task_id="start")
    with TaskGroup("load", tooltip="loads everything") as load:
        orders = BashOperator(
            task_id="orders",
            bash_command="echo {{ ds }}",
            env={"API_TOKEN": "hunter22", "REGION": "eu"},
            retries=2,
            retry_delay=timedelta(minutes=5),
            pool="db",
            doc_md="Loads the orders.",
        )
        with TaskGroup("inner"):
            items = BashOperator(task_id="items", bash_command="echo items")
        orders >> items
    start >> load >> BashOperator(task_id="report", bash_command="echo report")
"""

ORDER = ["start", "load.orders", "load.inner.items", "report"]


@dataclass
class Env:
    config: Config
    factory: sessionmaker[Session]

    def parse(self, source: str) -> None:
        (self.config.dags_folder / "shop.py").write_text(textwrap.dedent(source))
        results = DagProcessor(self.config, self.factory).process_folder()
        assert [r.error for r in results] == [None]

    def trigger(self, hours: int) -> str:
        when = T0 + timedelta(hours=hours)
        return trigger_dag(self.factory, "shop", now=when, logical_date=when).run_id

    def start_run(self, run_id: str, at: datetime) -> None:
        with transaction(self.factory) as session:
            run_store.set_dag_run_state(session, "shop", run_id, DagRunState.RUNNING, at)

    def tries(self, run_id: str, task_id: str, *states: TaskInstanceState, at: datetime) -> None:
        """One try per state, each a minute long, as a worker would record them."""
        key = TIKey("shop", run_id, task_id)
        for state in states:
            with transaction(self.factory) as session:
                expected = {S.NONE, S.SCHEDULED, S.UP_FOR_RETRY}
                number = ti_store.start_try(session, key, expected=expected, now=at, hostname="h")
                assert number is not None
                at += timedelta(minutes=1)
                assert ti_store.finish_try(session, key, try_number=number, state=state, now=at)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    dags = tmp_path / "dags"
    dags.mkdir()
    config = load_config(
        {
            "SLIPSTREAM_HOME": str(tmp_path / "home"),
            "SLIPSTREAM__DATABASE__URL": db_url,
            "SLIPSTREAM__CORE__DAGS_FOLDER": str(dags),
            "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
        }
    )
    engine = make_engine(config)
    migrate(engine)
    env = Env(config, session_factory(engine))
    env.parse(SHOP)
    yield env
    engine.dispose()


def test_runs_grid_graph_and_gantt(env: Env) -> None:
    runs = [env.trigger(hours) for hours in (0, 1, 2)]
    first = runs[0]
    env.start_run(first, T0)
    env.tries(first, "start", S.SUCCESS, at=T0)
    env.tries(first, "load.orders", S.UP_FOR_RETRY, S.SUCCESS, at=T0 + timedelta(minutes=1))

    # the newest runs of each DAG, newest first, in one call; unknown ids map to nothing
    recent = overview.recent_runs(env.factory, ["shop", "elsewhere"], per_dag=2)
    assert [r.run_id for r in recent["shop"]] == [runs[2], runs[1]]
    assert recent["elsewhere"] == []
    assert recent["shop"][0].state == "queued" and recent["shop"][0].run_type == "manual"
    assert recent["shop"][0].logical_date == T0 + timedelta(hours=2)

    grid = overview.grid(env.factory, "shop", runs=2)
    assert [r.run_id for r in grid.runs] == [runs[1], runs[2]]  # oldest first
    assert [t.task_id for t in grid.tasks] == ORDER
    rows = {t.task_id: t for t in grid.tasks}
    assert rows["load.inner.items"].group == ("load", "load.inner")
    assert rows["load.inner.items"].label == "items" and rows["load.inner.items"].depth == 2
    assert rows["start"].group == () and rows["load.orders"].operator == "BashOperator"
    assert grid.groups["load"].tooltip == "loads everything"
    assert grid.groups["load.inner"].parent_group_id == "load"
    assert grid.cells[(runs[2], "start")].state == "none"

    # paging back: the runs due before the oldest one shown
    older = overview.grid(env.factory, "shop", runs=2, before=grid.runs[0].run_after)
    assert [r.run_id for r in older.runs] == [first]
    orders = older.cells[(first, "load.orders")]
    assert (orders.state, orders.try_number, orders.duration) == ("success", 2, 60.0)
    assert orders.end_date == T0 + timedelta(minutes=3)

    graph = overview.graph(env.factory, "shop", first)
    assert [n.task_id for n in graph.nodes] == ORDER
    assert {n.task_id: n.state for n in graph.nodes}["load.orders"] == "success"
    assert graph.edges == [
        ("load.inner.items", "report"),
        ("load.orders", "load.inner.items"),
        ("start", "load.orders"),
    ]
    assert {g.group_id for g in graph.groups} == {"load", "load.inner"}
    assert next(n for n in graph.nodes if n.task_id == "load.orders").group == "load"
    assert all(n.state is None for n in overview.graph(env.factory, "shop").nodes)

    bars = overview.gantt(env.factory, "shop", first)
    assert [(b.task_id, b.try_number, b.state) for b in bars] == [
        ("start", 1, "success"),
        ("load.orders", 1, "up_for_retry"),
        ("load.orders", 2, "success"),
    ]
    assert bars[1].start_date == T0 + timedelta(minutes=1)
    assert bars[2].end_date == T0 + timedelta(minutes=3)


def test_recent_runs_break_ties_and_return_short_histories_whole(env: Env) -> None:
    when = T0 + timedelta(hours=1)
    older = env.trigger(0)
    for run_id in ("tie-1", "tie-2"):  # due at the same time: the later-made one first
        trigger_dag(env.factory, "shop", now=when, logical_date=when, run_id=run_id)

    def recent(per_dag: int) -> list[str]:
        return [r.run_id for r in overview.recent_runs(env.factory, ["shop"], per_dag)["shop"]]

    assert recent(1) == ["tie-2"]
    assert recent(2) == ["tie-2", "tie-1"]
    assert recent(5) == ["tie-2", "tie-1", older]


def test_running_try_is_a_gantt_bar_and_gone_tasks_stay_in_the_grid(env: Env) -> None:
    run_id = env.trigger(0)
    env.start_run(run_id, T0)
    env.tries(run_id, "start", S.SUCCESS, at=T0)
    with transaction(env.factory) as session:
        key = TIKey("shop", run_id, "load.orders")
        ti_store.start_try(session, key, expected={S.NONE}, now=T0, hostname="h")
    bars = overview.gantt(env.factory, "shop", run_id)
    assert [(b.task_id, b.state, b.end_date) for b in bars][-1] == ("load.orders", "running", None)

    # the DAG loses "report": the grid keeps it, after the latest version's tasks
    env.parse(SHOP.replace('BashOperator(task_id="report", bash_command="echo report")', "[]"))
    grid = overview.grid(env.factory, "shop")
    assert [t.task_id for t in grid.tasks] == ORDER
    assert grid.tasks[-1].operator == "BashOperator" and grid.tasks[-1].group == ()
    assert "report" not in {n.task_id for n in overview.graph(env.factory, "shop").nodes}
    # the run keeps the version it ran with
    assert "report" in {n.task_id for n in overview.graph(env.factory, "shop", run_id).nodes}


def test_task_detail_shows_settings_and_source_templates(env: Env) -> None:
    detail = overview.task_detail(env.factory, "shop", "load.orders")
    assert detail["operator"] == "BashOperator" and detail["retries"] == 2
    assert detail["retry_delay"] == 300.0 and detail["pool"] == "db"
    assert detail["trigger_rule"] == "all_success" and detail["doc_md"] == "Loads the orders."
    assert detail["template_fields"]["bash_command"] == "echo {{ ds }}"
    # a sensitive key is masked even in the source: the DAG file spells it out
    assert detail["template_fields"]["env"] == {"API_TOKEN": "***", "REGION": "eu"}
    assert detail["upstream_task_ids"] == ["start"]
    assert detail["downstream_task_ids"] == ["load.inner.items"]
    assert detail["task_group"] == "load" and detail["label"] == "orders"


def test_unknown_ids_say_what_is_missing(env: Env) -> None:
    with pytest.raises(DagNotFound, match="DAG 'shap' does not exist; did you mean 'shop'"):
        overview.grid(env.factory, "shap")
    with pytest.raises(DagRunNotFound, match="DAG 'shop' has no run 'nope'"):
        overview.gantt(env.factory, "shop", "nope")
    with pytest.raises(DagRunNotFound, match="has no run 'nope'"):
        overview.graph(env.factory, "shop", "nope")
    with pytest.raises(
        TaskNotFound, match=r"has no task 'load\.order'; did you mean 'load\.orders'"
    ):
        overview.task_detail(env.factory, "shop", "load.order")
    with pytest.raises(DagNotFound):
        overview.dag_source(env.factory, "shap")
    with pytest.raises(InvalidInputError, match="at least 1"):
        overview.grid(env.factory, "shop", runs=0)
    with pytest.raises(InvalidInputError, match="at least 1"):
        overview.recent_runs(env.factory, ["shop"], per_dag=0)
    assert overview.recent_runs(env.factory, []) == {}
