"""WebUI convention: run by the WebUI at start-up; installs what requirements.txt lists and lacks.

Uses the WebUI's own `launch.is_installed` / `launch.run_pip` (modules/launch_utils.py), so the
WebUI's index URL and --skip-install are honoured. A stock WebUI needs no download.
"""

from __future__ import annotations

import re
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def missing_requirements(requirements_text: str, is_installed) -> list[str]:
    """Requirement lines whose distribution `is_installed` does not find."""
    missing = []
    for line in requirements_text.splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name = re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]
        if not is_installed(name):
            missing.append(spec)
    return missing


def main() -> None:
    import launch  # the WebUI's launch.py; only importable inside the WebUI

    for spec in missing_requirements(REQUIREMENTS.read_text(encoding="utf-8"), launch.is_installed):
        launch.run_pip(f'install "{spec}"', f"sd-webui-depth2img requirement: {spec}")


if __name__ == "__main__":
    main()
