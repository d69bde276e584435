"""The engine's rooms stay a clean graph: no import cycle between lib_depth's modules (imports
inside functions count: hiding an import there is how cycles crept in before), and no module grows
past the size one reader can hold in mind."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib_depth"
MAX_LINES = 420
ROOMS = ("normalise", "depth", "io", "models", "cli", "webui")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def target_modules(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imported_modules(source: str, name: str, is_package: bool = False) -> set[str]:
    """The lib_depth modules a module's source imports anywhere in it (a name imported from a package
    is an edge to the submodule when it is one, else to the package's __init__)."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in MODULES:
                    found.add(submodule)
                elif module in MODULES:
                    found.add(module)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: target_modules(path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_lib_depth_has_no_import_cycle():
    assert len(MODULES) > 30
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function():
    lazy = "def f():\n    from .settings import DepthSettings\n    from .depth import estimator\n"
    assert imported_modules(lazy, "lib_depth.fields") == {"lib_depth.settings", "lib_depth.depth.estimator"}
    graph = import_graph()
    graph["lib_depth.fields"] = graph["lib_depth.fields"] | imported_modules(lazy, "lib_depth.fields")
    assert ["lib_depth.fields", "lib_depth.settings"] in cycles(graph)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_over_the_line_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES.values()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_the_engine_has_its_rooms():
    for room in ROOMS:
        assert (PACKAGE / room / "__init__.py").is_file(), room
    assert len([p for p in PACKAGE.glob("*.py")]) <= 12, "the package root holds the conditioning room only"


def test_normalisation_never_calls_back_into_conditioning():
    graph = import_graph()
    assert "lib_depth.normalise" in graph["lib_depth.conditioning"]
    normalisation = [name for name in graph if name.startswith("lib_depth.normalise")]
    assert len(normalisation) >= 3
    assert [name for name in normalisation if "lib_depth.conditioning" in graph[name]] == []


def test_the_layout_tree_names_every_module():
    """docs/development.md's Layout tree has a line for every module (estimators/ is one line)."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    tree = text[text.index("```\nscripts/depth2img.py") :]
    tree = tree[: tree.index("```", 4)]
    named = set(re.findall(r"(\w+\.py)", tree))
    described_by_their_folder = [path for path in MODULES.values() if "estimators" in path.parts]
    room_packages = [PACKAGE / room / "__init__.py" for room in ROOMS]
    missing = [
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if path.name not in named and path not in described_by_their_folder and path not in room_packages
    ]
    assert missing == []
    for room in ROOMS:
        assert f"  {room}/" in tree, room
