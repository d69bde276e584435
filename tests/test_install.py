"""install.py: what it would install, with the WebUI's launch.is_installed semantics."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import runpy
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
install = runpy.run_path(str(ROOT / "install.py"), run_name="depth2img_install")


def webui_is_installed(package: str) -> bool:
    """Same logic as is_installed in the WebUI's modules/launch_utils.py (v1.10.1)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            return False
        return spec is not None
    return dist is not None


def test_only_missing_requirements_are_listed():
    text = "\n".join(
        [
            "# comment",
            "",
            "torch>=2.0  # present",
            "numpy",
            "no-such-package-depth2img==1.0",
            "other[extra]>=2; python_version>'3'",
        ]
    )
    assert install["missing_requirements"](text, webui_is_installed) == [
        "no-such-package-depth2img==1.0",
        "other[extra]>=2; python_version>'3'",
    ]


def test_a_stock_webui_needs_nothing_from_our_requirements(monkeypatch):
    calls = []
    launch = types.SimpleNamespace(is_installed=webui_is_installed, run_pip=lambda *args: calls.append(args))
    monkeypatch.setitem(sys.modules, "launch", launch)
    install["main"]()
    assert calls == []


def test_missing_requirement_is_installed_through_run_pip(monkeypatch, tmp_path):
    calls = []
    launch = types.SimpleNamespace(is_installed=lambda name: False, run_pip=lambda *args: calls.append(args))
    monkeypatch.setitem(sys.modules, "launch", launch)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("safetensors>=0.4\n")
    monkeypatch.setitem(install["main"].__globals__, "REQUIREMENTS", requirements)
    install["main"]()
    assert calls == [('install "safetensors>=0.4"', "sd-webui-depth2img requirement: safetensors>=0.4")]
