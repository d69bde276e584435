"""The project's own promises: CI runs the README's test command; the engine stays WebUI-free."""

from __future__ import annotations

import os
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
    script = ROOT / test_command.split("bash ", 1)[1] if test_command.startswith("bash ") else None
    assert "pytest" in (script.read_text() if script else test_command)
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
        "import sys, lib_depth, lib_depth.cli.main; "
        "print([m for m in ('modules', 'launch', 'gradio') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_page_python_snippet_runs_as_written(tmp_path, depth_model):
    """docs/cli.md's "From Python" snippet, in a folder holding the files it names."""
    from checkpoints import state_dict, write_safetensors
    from scenes import make_scene

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    snippet = page.split("## From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    tensors = state_dict("depth")
    tensors.update({f"depth_model.model.{k}": v for k, v in depth_model.model.state_dict().items()})
    write_safetensors(tmp_path / "512-depth-ema.safetensors", tensors)
    for seed, name in enumerate(("a.png", "b.png")):
        make_scene(128, 96, seed).save(tmp_path / name)
    check = "\nassert conditioning.shape == (2, 1, 12, 16), conditioning.shape\nprint('snippet ok')"
    result = subprocess.run(
        [sys.executable, "-c", snippet + check],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "snippet ok" in result.stdout, result.stderr
