"""Shell completion scripts for `rnncli`, generated from the app by Typer.

    python tools/completions.py completions/    # rewrite completions/ from the current app
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "rnncli.bash", "zsh": "_rnncli", "fish": "rnncli.fish"}


def completion_script(shell: str) -> str:
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="rnncli", complete_var="_RNNCLI_COMPLETE",
                                 shell=shell).rstrip("\n") + "\n"


def write_all(folder: Path) -> list[Path]:
    from rnncli.fsutil import atomic_write_text

    paths = []
    for shell, name in SHELLS.items():
        atomic_write_text(folder / name, completion_script(shell))
        paths.append(folder / name)
    return paths


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(path)
