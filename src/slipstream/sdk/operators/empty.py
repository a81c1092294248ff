"""``EmptyOperator``: a task that does nothing; runners finish it without starting a process."""

from __future__ import annotations

from typing import Any

from slipstream.sdk.baseoperator import BaseOperator
from slipstream.sdk.context import Context


class EmptyOperator(BaseOperator):
    ui_color = "#e8f7e4"

    def execute(self, context: Context) -> Any:
        return None
