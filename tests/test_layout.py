"""The three rooms stay apart: the engine never imports the glue or the WebUI (read from the
source, so a lazy import inside a function counts too); the glue reads only registered options."""

from __future__ import annotations

import ast
from pathlib import Path

from lib_depth.webui.options import BY_KEY

ROOT = Path(__file__).resolve().parents[1]
ENGINE = [p for p in (ROOT / "lib_depth").rglob("*.py") if "webui" not in p.relative_to(ROOT / "lib_depth").parts]
GLUE = sorted((ROOT / "lib_depth" / "webui").rglob("*.py"))
FORBIDDEN = ("modules", "gradio", "fastapi", "starlette", "launch", "lib_depth.webui")


def imported_names(path: Path) -> set[str]:
    """Absolute names of every import in a file, relative ones resolved against its package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = node.module or ""
            full = (f"{base}.{module}" if module else base) if node.level else module
            names.add(full)
            names.update(f"{full}.{alias.name}" for alias in node.names)
    return names


def test_the_engine_imports_neither_the_glue_nor_the_webui():
    assert len(ENGINE) > 15
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imported_names(path) if n.split(".")[0] in FORBIDDEN[:5]
                                            or n.startswith(FORBIDDEN[5]))
        for path in ENGINE
    }  # fmt: skip
    assert {file: names for file, names in offenders.items() if names} == {}


def test_the_import_check_sees_relative_and_lazy_imports(tmp_path):
    sample = ROOT / "lib_depth" / "webui" / "generation.py"
    names = imported_names(sample)
    assert "lib_depth.run.DepthRun" in names and "lib_depth.webui.options" in names
    assert any(n.startswith("lib_depth.webui.") for n in imported_names(ROOT / "lib_depth" / "webui" / "ui.py"))
    compat = ROOT / "lib_depth" / "webui" / "compat.py"
    assert "modules.shared" in imported_names(compat)  # a lazy import inside a function


def test_every_option_the_glue_reads_is_registered():
    read = set()
    for path in GLUE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, (ast.Attribute, ast.Name))
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "read"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                read.add(node.args[0].value)
            owner = getattr(node, "value", None)
            if (
                isinstance(node, ast.Attribute)
                and getattr(owner, "attr", getattr(owner, "id", None)) == "opts"
                and node.attr.startswith("depth2img")
            ):
                read.add(node.attr)  # shared.opts.depth2img_x read past the table
    assert read and read <= set(BY_KEY), f"read but not registered: {sorted(read - set(BY_KEY))}"
