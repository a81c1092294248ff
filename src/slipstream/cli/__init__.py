"""Command-line interface. Each command parses, calls one service function, and formats."""

from slipstream.cli.main import main

__all__ = ["main"]
