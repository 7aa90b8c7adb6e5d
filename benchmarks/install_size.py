"""Disk taken by the base install and by the `[train]` extra, from the installed files.

    python benchmarks/install_size.py      # in an environment with rnncli[train] installed

Walks each dependency tree through the installed distributions' metadata and adds up the
sizes of the files they recorded. The download is smaller (wheels are compressed).
"""

from __future__ import annotations

import importlib.metadata as md
import os

from packaging.requirements import Requirement

BASE = ["typer", "rich", "numpy", "onnxruntime"]
TRAIN = ["tensorflow", "keras", "tf2onnx", "onnx"]


def closure(names: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return seen


def installed_bytes(name: str) -> int:
    total = 0
    for f in md.distribution(name).files or []:
        try:
            total += os.path.getsize(f.locate())
        except OSError:
            pass
    return total


def main() -> None:
    base = closure(BASE)
    train = closure(TRAIN) - base
    base_size = sum(map(installed_bytes, base))
    train_size = sum(map(installed_bytes, train))
    print(f"base install:     {base_size / 1e9:5.2f} GB in {len(base)} packages")
    print(f"[train] adds:     {train_size / 1e9:5.2f} GB in {len(train)} packages "
          f"(tensorflow {md.version('tensorflow')}: "
          f"{installed_bytes('tensorflow') / 1e9:.2f} GB)")
    print(f"base + [train]:   {(base_size + train_size) / 1e9:5.2f} GB")


if __name__ == "__main__":
    main()
