"""sd-webui-depth2img: WebUI wiring. The work happens in lib_depth; this file only connects it."""

from __future__ import annotations

import ldm.modules.midas.api as midas_api
from modules import script_callbacks

from lib_depth.webui import install_offline_midas, selected_checkpoint_has_depth_weights

# Depth checkpoints carry their MiDaS weights: build the depth model without the 470 MB file.
script_callbacks.on_script_unloaded(install_offline_midas(midas_api, selected_checkpoint_has_depth_weights))
