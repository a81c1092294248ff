"""A classic DAG: ``with DAG(...)``, BashOperator and PythonOperator, templating and ``>>``.

``{{ ds }}`` is the run's logical date; ``params`` come from the DAG and can be overridden
when triggering (``slipstream dags trigger example_bash_python --conf '{"greeting": "hi"}'``).
"""

from datetime import datetime, timedelta

from slipstream import DAG, Param
from slipstream.operators import BashOperator, PythonOperator


def summarize(ds: str, params: dict[str, object]) -> str:
    message = f"{params['greeting']} from the run of {ds}"
    print(message)
    return message


with DAG(
    dag_id="example_bash_python",
    description="Bash and Python tasks with templated commands and params",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={
        "greeting": Param("hello", type="string"),
        "repeat": Param(2, type="integer", minimum=1),
    },
    default_args={"owner": "data-team", "retries": 0, "execution_timeout": timedelta(minutes=1)},
    tags=["example", "bash", "python"],
) as dag:
    print_date = BashOperator(task_id="print_date", bash_command="echo 'logical date: {{ ds }}'")
    greet = BashOperator(
        task_id="greet",
        bash_command=(
            "for i in $(seq {{ params.repeat }}); do echo '{{ params.greeting }} #'$i; done"
        ),
    )
    report = PythonOperator(task_id="summarize", python_callable=summarize)

    print_date >> greet >> report
