"""Command line: `python -m lib_depth ...` (the engine without the WebUI): main() runs the chosen
command (cli/<command>.py, parsed by cli/parser.py) and turns what goes wrong into one line."""

from __future__ import annotations

import sys
from typing import Sequence

from ..io.images import MAX_MEGAPIXELS_VARIABLE
from .common import error_text
from .parser import build_parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr)


def _terminated(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt  # a `kill` ends the command as Ctrl+C does: half-written files removed


def main(argv: Sequence[str] | None = None) -> int:
    import os
    import signal
    import threading
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    configured = os.environ.get(MAX_MEGAPIXELS_VARIABLE)
    if args.max_megapixels is not None:
        os.environ[MAX_MEGAPIXELS_VARIABLE] = repr(args.max_megapixels)  # the limit everywhere, for this command
    shown = warnings.showwarning
    warnings.showwarning = _show_warning  # one "warning: ..." line, no source listing
    on_main_thread = threading.current_thread() is threading.main_thread()
    terminate = signal.signal(signal.SIGTERM, _terminated) if on_main_thread else None
    try:
        return args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error_text(error)}", file=sys.stderr)
        return 2
    except ImportError as error:  # ldm, open_clip or a library missing: which one, and what to run instead
        print(
            f"error: cannot import {error.name or error} ({error}); run the command line with the WebUI's own "
            "Python, from the WebUI folder: venv/bin/python extensions/sd-webui-depth2img/depth2img-cli.py ... "
            "(Windows: venv\\Scripts\\python.exe), or install requirements-cli.txt",
            file=sys.stderr,
        )
        return 2
    except MemoryError:
        print("error: not enough memory for this; try smaller images or --max-megapixels", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, terminate)
        warnings.showwarning = shown
        if configured is None:
            os.environ.pop(MAX_MEGAPIXELS_VARIABLE, None)
        else:
            os.environ[MAX_MEGAPIXELS_VARIABLE] = configured
