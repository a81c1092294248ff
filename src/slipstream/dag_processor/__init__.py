"""The DAG processor: the only long-lived component that imports user DAG files.

It parses each file in a child process with a timeout and stores serialized DAGs, their
versions and per-file import errors in the metadata database, where the scheduler and the
web UI read them without ever running user code.
"""

from slipstream.dag_processor.loop import DagProcessorLoop, PassResult
from slipstream.dag_processor.parsing import ParseOutcome, parse_files
from slipstream.dag_processor.processor import DagProcessor, FileResult, Progress

__all__ = [
    "DagProcessor",
    "DagProcessorLoop",
    "FileResult",
    "ParseOutcome",
    "PassResult",
    "Progress",
    "parse_files",
]
