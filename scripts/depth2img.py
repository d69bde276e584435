"""sd-webui-depth2img: the WebUI's entry point. The work happens in lib_depth (the engine) and
lib_depth.webui (the glue); this file only connects them to the WebUI's script and callbacks."""

from __future__ import annotations

from modules import script_callbacks, scripts

from lib_depth.webui import api, depth_model, generation, options, saving, ui, xyz
from lib_depth.webui.compat import capture_webui_input, ldm_midas_api, unsupported_reason


class Depth2ImgScript(scripts.Script):
    """The Depth2img accordion in txt2img and img2img; always on, so that a depth model always gets
    per-image depth (the accordion's own switch only decides whether the user's settings apply)."""

    def __init__(self) -> None:
        self.components: dict[str, object] = {}  # the WebUI inputs the preview reads, by elem_id

    def title(self) -> str:
        return "Depth2img"

    def show(self, is_img2img: bool):
        return scripts.AlwaysVisible

    def after_component(self, component, **kwargs) -> None:
        capture_webui_input(self.components, component, kwargs)

    def ui(self, is_img2img: bool):
        """The accordion; its components' values are this script's arguments (fields.py order)."""
        return ui.build(self, is_img2img)

    def process(self, p, *args) -> None:
        """Before the WebUI prepares the images: put our depth conditioning on this `p` only."""
        if unsupported_reason() is None:
            generation.process(p, args)


# The one global patch: depth checkpoints carry their MiDaS weights, so ldm builds the depth model
# without the 470 MB file and without a download. Undone when the WebUI reloads its scripts.
# (Forge has no ldm: lib_depth.webui.forge builds the MiDaS itself.)
if (midas_api := ldm_midas_api()) is not None:
    _undo = depth_model.install_offline_midas(midas_api, depth_model.selected_checkpoint_has_depth_weights)
    script_callbacks.on_script_unloaded(_undo)
script_callbacks.on_image_saved(saving.on_image_saved)
# a new cache size applies when it is set, not at the next estimate
script_callbacks.on_ui_settings(lambda: options.register({"depth2img_cache_entries": depth_model.apply_cache_option}))
script_callbacks.on_app_started(api.on_app_started)
# X/Y/Z plot axes: before each UI build, since Reload UI loads xyz_grid.py anew (with its own list)
script_callbacks.on_before_ui(xyz.register_axes)
