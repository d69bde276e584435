"""The requirement lists are true: requirements-cli.txt is exactly what the command line imports
(checked on the source, and in a fresh virtual environment by the slow test); requirements.txt,
which install.py installs into a WebUI, lists nothing, so a WebUI never gets a second torch."""

from __future__ import annotations

import ast
import os
import re
import runpy
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT_NAMES = {"pillow": "PIL", "pyyaml": "yaml"}  # distribution -> import name, where they differ
FROM_THE_WEBUI = {"ldm", "open_clip"}  # depth's MiDaS code and convert's model code: in every WebUI
# imported only for what the project cannot read itself, with a message naming the package when it is
# missing: the `openexr` package for OpenEXR codecs beyond NONE/RLE/ZIPS/ZIP (lib_depth/io/exr.py)
OPTIONAL_IMPORTS = {"OpenEXR"}


def listed(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            names.append(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0])
    return names


def module_file(name: str) -> Path:
    """lib_depth.a.b -> lib_depth/a/b.py or lib_depth/a/b/__init__.py."""
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def command_line_imports() -> dict[str, set[str]]:
    """Third-party top-level modules imported anywhere (also inside functions) by the modules
    that `python -m lib_depth` loads, following the package's relative imports -> importers."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    pending = ["lib_depth", "lib_depth.__main__", "lib_depth.cli.main"]
    while pending:
        module = pending.pop()
        if module in seen or not module_file(module).is_file():
            continue
        seen.add(module)
        path = module_file(module)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name.split(".")[0], set()).add(module)
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                pending.append(target)
                pending += [f"{target}.{alias.name}" for alias in node.names]  # submodules imported by name
            elif isinstance(node, ast.ImportFrom):
                found.setdefault(node.module.split(".")[0], set()).add(module)
    return {name: users for name, users in found.items() if name not in sys.stdlib_module_names and name != "lib_depth"}


def test_requirements_cli_is_exactly_what_the_command_line_imports():
    imported = command_line_imports()
    wanted = {IMPORT_NAMES.get(name.lower(), name.lower()) for name in listed(ROOT / "requirements-cli.txt")}
    assert set(imported) - FROM_THE_WEBUI - OPTIONAL_IMPORTS == wanted, imported
    assert {"torch", "numpy", "PIL", "yaml", "safetensors"} == wanted


def test_webui_requirements_list_nothing_and_never_torch():
    assert listed(ROOT / "requirements.txt") == []
    install = runpy.run_path(str(ROOT / "install.py"), run_name="depth2img_install")
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert install["missing_requirements"](text, lambda name: False) == []


def local_torch_wheel() -> Path | None:
    """A torch wheel on this machine's disk (DEPTH2IMG_TORCH_WHEEL, or pip's find-links folder)."""
    given = os.environ.get("DEPTH2IMG_TORCH_WHEEL")
    if given:
        return Path(given)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    )
    for folder in result.stdout.split():
        wheels = sorted(Path(folder).glob(f"torch-*-cp{sys.version_info[0]}{sys.version_info[1]}-*.whl"))
        if wheels:
            return wheels[-1]
    return None


@pytest.mark.slow
def test_command_line_runs_with_exactly_the_listed_packages(tmp_path):
    """A virtual environment without system site packages, requirements-cli.txt installed (torch
    from a local wheel, so the test neither downloads gigabytes nor depends on the network's
    torch), then the README's first Development command's doctor and preview."""
    wheel = local_torch_wheel()
    if wheel is None or not wheel.is_file():
        pytest.skip("no local torch wheel (set DEPTH2IMG_TORCH_WHEEL to one)")
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(environment)
    python = environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=900)
    subprocess.run([*pip, "-r", str(ROOT / "requirements-cli.txt")], check=True, timeout=900)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    doctor = subprocess.run(
        [str(python), "-m", "lib_depth", "doctor", "tests/data"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert doctor.returncode == 0, doctor.stderr
    assert "tiny-depth-header.safetensors" in doctor.stdout
    output = tmp_path / "preview.png"
    preview = subprocess.run(
        [str(python), "-m", "lib_depth", "preview", "tests/data/radial-depth-16bit.png", "-o", str(output), "--color"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert preview.returncode == 0, preview.stderr
    assert output.is_file()
