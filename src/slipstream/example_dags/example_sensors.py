"""Sensors: wait for a file, a moment and a condition.

``write_file`` drops a file in the temp folder after a short pause while ``wait_for_file``
(a FileSensor poking every 0.1 s) waits for it. ``count_rows`` is a ``@task.sensor`` whose
``PokeReturnValue`` (the row count) becomes its XCom. ``interval_over`` and ``past_target``
wait until half a second and one second after the run's data interval ends, so the whole DAG
takes about a second for a run dated now. ``report`` reads what the sensors found and
removes the file.
"""

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from slipstream import DAG, task
from slipstream.sensors import DateTimeSensor, FileSensor, PokeReturnValue, TimeDeltaSensor

FOLDER = Path(tempfile.gettempdir()) / "slipstream-example-sensors"
# one file per run; ":" and "+" of the run id kept out of the file name
FILE = str(FOLDER / "{{ run_id | replace(':', '_') | replace('+', '_') }}.csv")


def data_file(run_id: str) -> Path:
    """The file FILE renders to, for the Python tasks."""
    return FOLDER / (run_id.replace(":", "_").replace("+", "_") + ".csv")


with DAG(
    dag_id="example_sensors",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    default_args={"poke_interval": 0.1, "timeout": 10},
    tags=["example", "sensors"],
) as dag:

    @task
    def write_file(run_id=None):
        time.sleep(0.3)  # the sensor pokes a few times before the file is there
        FOLDER.mkdir(exist_ok=True)
        data_file(run_id).write_text("id,amount\n1,10\n2,32\n")

    wait_for_file = FileSensor(task_id="wait_for_file", filepath=FILE)

    @task.sensor(poke_interval=0.1, timeout=10, templates_dict={"path": FILE})
    def count_rows(templates_dict=None):
        # the file may be there before it is complete: done once it holds a data row
        lines = Path(templates_dict["path"]).read_text().splitlines()
        return PokeReturnValue(is_done=len(lines) > 1, xcom_value={"rows": len(lines) - 1})

    interval_over = TimeDeltaSensor(task_id="interval_over", delta=timedelta(seconds=0.5))
    past_target = DateTimeSensor(
        task_id="past_target", target_time="{{ data_interval_end + macros.timedelta(seconds=1) }}"
    )

    @task
    def report(found, run_id=None):
        print(f"count_rows found {found['rows']} rows")
        data_file(run_id).unlink()

    rows = count_rows()
    wait_for_file >> rows
    [write_file(), interval_over, past_target] >> report(rows)
