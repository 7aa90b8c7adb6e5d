"""The package's rooms and the one way their imports run (CONTRIBUTING.md, "Layout").

Every import is read with `ast`, those inside functions included (they run too, only
later); imports under `if TYPE_CHECKING:` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnncli"

# Each room and the rooms it may import from. cli -> {data, train, export, serve, evaluate}
# -> {model, text, config} -> {errors, fsutil}; serve imports neither train nor export.
ALLOWED: dict[str, set[str]] = {
    "base": set(),  # errors.py, fsutil.py
    "text": {"base"},
    "model": {"text", "base"},
    "config": {"model", "text", "base"},  # settings are checked against the registries
    "data": {"text", "config", "base"},
    "serve": {"text", "config", "base"},
    "evaluate": {"data", "serve", "model", "text", "config", "base"},
    "train": {"data", "serve", "model", "text", "config", "base"},
    "export": {"data", "serve", "evaluate", "model", "text", "config", "base"},
    "cli": {"data", "train", "export", "serve", "evaluate", "model", "text", "config", "base",
            "api"},
    "api": {"serve"},  # rnncli/__init__.py: rnncli.load()
    "main": {"cli"},  # python -m rnncli
}
TOP_LEVEL = {"errors": "base", "fsutil": "base", "system": "base", "evaluate": "evaluate",
             "__init__": "api",
             "spark": "api",  # rnncli.spark: predict_udf for Spark users, from serve/spark.py
             "__main__": "main"}
MAX_TOP_LEVEL_MODULES = 8


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "api"
    if len(parts) == 2 and parts[1] in TOP_LEVEL:
        return TOP_LEVEL[parts[1]]
    return parts[1]


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere but under TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != name}


def import_graph(root: Path) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(paths)
    return {name: imports_of(p, name, known) for name, p in paths.items()}


def wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, deps in sorted(graph.items()):
        room = room_of(name)
        for dep in sorted(deps):
            target = room_of(dep)
            if target != room and target not in ALLOWED.get(room, set()):
                bad.append(f"{name} ({room}) imports {dep} ({target})")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_imports_run_one_way():
    graph = import_graph(PACKAGE)
    assert graph, "no modules found"
    rooms = {room_of(n) for n in graph}
    assert rooms <= set(ALLOWED), f"modules outside any room: {rooms - set(ALLOWED)}"
    assert wrong_arrows(graph) == []


def test_no_import_cycle_between_modules_or_rooms():
    graph = import_graph(PACKAGE)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    rooms: dict[str, set[str]] = {}
    for name, deps in graph.items():
        rooms.setdefault(room_of(name), set()).update(
            room_of(d) for d in deps if room_of(d) != room_of(name))
    assert find_cycle(rooms) is None, " -> ".join(find_cycle(rooms) or [])
    assert find_cycle(ALLOWED) is None


def test_the_top_of_the_package_stays_small_and_every_room_says_what_it_holds():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    rooms = [p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()]
    assert len(rooms) >= 5
    for room in rooms:
        doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text()))
        assert doc and "Imports:" in doc, f"{room.name}/__init__.py: say what it holds and imports"


@pytest.fixture
def tiny_package(tmp_path):
    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "rnncli"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root
    return make


def test_the_checks_see_a_wrong_arrow_and_a_cycle_inside_a_function(tiny_package):
    root = tiny_package({
        "__init__.py": "",
        "serve/__init__.py": "",
        "serve/session.py": "def f():\n    from rnncli.train import loop\n",
        "train/__init__.py": "",
        "train/loop.py": "from rnncli.train import batches\n",
        "train/batches.py": "def g():\n    from rnncli.train.loop import x\n",
        "model/__init__.py": "",
        "model/build.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                           "    from rnncli.config.settings import RunConfig\n"),
        "config/__init__.py": "",
        "config/settings.py": "from rnncli.model import build\n",
    })
    graph = import_graph(root)
    assert wrong_arrows(graph) == [
        "rnncli.serve.session (serve) imports rnncli.train.loop (train)"]
    assert set(find_cycle(graph)) == {"rnncli.train.loop", "rnncli.train.batches"}
    assert graph["rnncli.model.build"] == set()  # TYPE_CHECKING imports never run
