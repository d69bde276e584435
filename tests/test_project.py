"""The project's own promises: CI runs the README's test command; the engine stays WebUI-free."""

from __future__ import annotations

import shlex
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
    # its install step is run for real, in a fresh environment, by test_requirements.py (slow)
    command = command.removeprefix("python -m pip install -r requirements-cli.txt && ")
    assert command.startswith("python -m lib_depth ")
    command = command.replace("python -m", f"{shlex.quote(sys.executable)} -m")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SD 2 depth" in result.stdout and "all fine" in result.stdout
    assert (tmp_path / "p.png").stat().st_size > 0


def test_engine_imports_no_webui_module():
    code = (
        "import sys, lib_depth, lib_depth.cli; print([m for m in ('modules', 'launch', 'gradio') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
