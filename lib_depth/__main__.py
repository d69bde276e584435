import sys
from pathlib import Path

from .cli.bootstrap import add_import_paths

add_import_paths(Path(__file__).resolve().parent.parent)  # inside a WebUI: its ldm, as the WebUI uses

from .cli.main import main  # noqa: E402

sys.exit(main())
