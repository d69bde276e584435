#!/usr/bin/env bash
# Everything CI checks (.ci/run calls this; README "Development"): the test requirements, lint,
# every test, then the fast tiers again on the library versions the WebUI v1.10.1 ships.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
python -m pip install -r requirements-test.txt
python -m pip install --no-deps -r requirements-reference.txt
python -m ruff check .
python -m pytest

# A virtualenv that sees everything installed above (a .pth file naming this Python's packages
# folder, which works whether that Python is a virtualenv or not), with the WebUI's pins over it.
pinned=".venv-webui-pins"
rm -rf "$pinned"
python -m venv "$pinned"
packages="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pinned_packages="$("$pinned/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$packages" > "$pinned_packages/zz-test-requirements.pth"
"$pinned/bin/python" -m pip install -r requirements-webui-pins.txt
"$pinned/bin/python" -c 'import numpy, PIL, pydantic; print("WebUI pins:", numpy.__version__, PIL.__version__, pydantic.VERSION)'
# Left out there: the modules whose oracles are diffusers/transformers releases newer than the WebUI's
# (they need safetensors >= 0.4.3 and do not import on its pins); the code they check is runtime code
# that imports neither, and the other tiers exercise it on these pins.
"$pinned/bin/python" -m pytest -m "not slow" -p no:cacheprovider \
    --ignore=tests/test_convert.py --ignore=tests/test_convert_errors.py --ignore=tests/test_depth_anything_v2.py
