"""The project's own promises: CI runs the README's test command; the engine stays WebUI-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Development", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_test_command():
    test_command = readme_commands()[1]
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_first_command_runs(tmp_path):
    command = readme_commands()[0].replace("/tmp/depth-preview.png", str(tmp_path / "p.png"))
    args = command.split()
    assert args[:3] == ["python", "-m", "lib_depth"]
    result = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p.png").stat().st_size > 0


def test_engine_imports_no_webui_module():
    code = (
        "import sys, lib_depth, lib_depth.cli; print([m for m in ('modules', 'launch', 'gradio') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
