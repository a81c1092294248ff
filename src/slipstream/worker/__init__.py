"""Running tasks: one try in a forked child with a timeout and a per-try log, and the
in-process DAG run behind ``slipstream dags test``."""
