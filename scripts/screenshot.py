"""Draw the README's terminal picture: ``slipstream dags test`` on an example DAG, as SVG.

.venv/bin/python scripts/screenshot.py docs/images/dags-test.svg
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from rich.console import Console
from rich.text import Text


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "SLIPSTREAM_HOME": home,
            "SLIPSTREAM__CORE__DAGS_FOLDER": os.path.join(home, "dags"),
            "FORCE_COLOR": "1",
            "COLUMNS": "104",
        }
        run = [sys.executable, "-m", "slipstream"]
        subprocess.run([*run, "db", "migrate"], env=env, check=True, capture_output=True)
        command = ["dags", "test", "example_trigger_rules", "2024-06-01"]
        result = subprocess.run([*run, *command], env=env, capture_output=True, text=True)
    text = result.stdout.replace(home, "~/slipstream")
    console = Console(record=True, width=104, force_terminal=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(Text(f"$ slipstream {' '.join(command)}", style="bold"))
    console.print(Text.from_ansi(text))
    console.save_svg(out, title="slipstream dags test")


if __name__ == "__main__":
    main(sys.argv[1])
