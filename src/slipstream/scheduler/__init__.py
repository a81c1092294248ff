"""The scheduler: creates DAG runs, decides what is ready, queues it in priority order."""
