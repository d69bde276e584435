r"""The depth2img command line, runnable from any folder with the WebUI's own Python:

    venv/bin/python extensions/sd-webui-depth2img/depth2img-cli.py doctor            (Linux, macOS)
    venv\Scripts\python.exe extensions\sd-webui-depth2img\depth2img-cli.py doctor    (Windows)

It finds this extension's lib_depth and, inside a WebUI, the WebUI's ldm; no PYTHONPATH needed.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lib_depth.cli.bootstrap import add_import_paths  # noqa: E402

add_import_paths(HERE)

from lib_depth.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
