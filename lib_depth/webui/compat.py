"""Every check of which WebUI this is, in one place.

Supported: AUTOMATIC1111 1.9 and later, reForge, and lllyasviel's Forge (2.x). What we rely on
that older AUTOMATIC1111 versions lack: `modules.infotext_utils.PasteField` (1.8),
`modules.ui_components.InputAccordion` (1.7) and `modules.masking.get_crop_region_v2` (1.9), the
inpaint "only masked" region finder that takes a PIL mask. On an older WebUI, and on the Forge
forks that removed SD 2 (Forge Classic, Forge Neo), the accordion shows `unsupported_reason()`
and nothing else runs.

Which WebUI is found by what is installed, never by parsing a version and never by importing
anything with side effects (Forge's `backend.memory_management` picks a CUDA device on import):

1. no `modules_forge` package                                     -> AUTOMATIC1111
2. `modules_forge.forge_version.version` "classic" or "neo"       -> Forge Classic / Forge Neo
3. `backend.diffusion_engine.sd20` (Forge's SD 2 engine) present  -> Forge: our forge.py path
4. `backend.diffusion_engine` present without sd20                -> a Forge without SD 2
5. otherwise (`modules_forge` with ldm: reForge, Forge 1)         -> reForge: AUTOMATIC1111's path
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any, Callable

SUPPORTED = "AUTOMATIC1111 WebUI 1.9 or later"

AUTOMATIC1111 = "AUTOMATIC1111"
REFORGE = "reForge"  # also the old Forge 1.x: modules_forge on top of ldm, A1111's processing
FORGE = "Forge"  # lllyasviel's Forge 2 (backend/, no ldm)
FORGE_CLASSIC = "Forge Classic"
FORGE_NEO = "Forge Neo"
FORGE_WITHOUT_SD2 = "this Forge"

NO_SD2 = (FORGE_CLASSIC, FORGE_NEO, FORGE_WITHOUT_SD2)
_FORK_VERSIONS = {"classic": FORGE_CLASSIC, "neo": FORGE_NEO}  # modules_forge/forge_version.py of each branch


def _present(name: str) -> bool:
    """Whether `name` can be imported, found without running it (parents are imported: in every
    WebUI checked these are namespace packages or already imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def forge_version() -> str | None:
    """modules_forge.forge_version.version (a file with constants only), None outside Forge."""
    if not _present("modules_forge.forge_version"):
        return None
    module = sys.modules.get("modules_forge.forge_version") or importlib.import_module("modules_forge.forge_version")
    return str(getattr(module, "version", "") or "")


def webui() -> str:
    """Which WebUI runs us (one of the names above)."""
    if not _present("modules_forge"):
        return AUTOMATIC1111
    fork = _FORK_VERSIONS.get((forge_version() or "").strip().lower())
    if fork:
        return fork
    if _present("backend.diffusion_engine.sd20"):
        return FORGE
    if _present("backend.diffusion_engine"):
        return FORGE_WITHOUT_SD2
    return REFORGE


def uses_forge_backend() -> bool:
    """Forge 2: its own model code (no ldm); the depth model needs lib_depth.webui.forge."""
    return webui() == FORGE


def unsupported_reason() -> str | None:
    """None where this WebUI has what the extension needs, else one line saying what is missing."""
    kind = webui()
    if kind in NO_SD2:
        return (
            f"Depth2img: {kind} does not load SD 2 models, so it cannot run the SD 2 depth model "
            "(use AUTOMATIC1111, reForge or lllyasviel's Forge)."
        )
    try:
        from modules import masking
        from modules.infotext_utils import PasteField  # noqa: F401
        from modules.ui_components import InputAccordion  # noqa: F401
    except ImportError as error:
        missing = error.name or str(error)
    else:
        if hasattr(masking, "get_crop_region_v2"):
            return None
        missing = "modules.masking.get_crop_region_v2"
    return f"Depth2img needs the {SUPPORTED} ({missing} is missing): update the WebUI."


def ldm_midas_api() -> Any | None:
    """ldm.modules.midas.api where the WebUI builds depth models with ldm (AUTOMATIC1111, reForge),
    for the offline-MiDaS patch; None where it does not (Forge 2 has no ldm, the others no SD 2)."""
    if webui() in (FORGE, *NO_SD2):
        return None
    import ldm.modules.midas.api as midas_api

    return midas_api


def route_conditioning(p: Any) -> None:
    """After generation.install put p.depth2img_image_conditioning on `p`: make the WebUI call it.
    AUTOMATIC1111 and reForge do (img2img_image_conditioning dispatches on ldm's depth class);
    Forge 2 dispatches a 5-channel UNet to its inpainting conditioning instead."""
    if uses_forge_backend():
        from . import forge

        forge.route_img2img_conditioning(p)


def fill_depth_weights(sd_model: Any) -> None:
    """reForge builds ldm's depth model but never loads the checkpoint's MiDaS weights into it:
    load them (once per model and file). Nothing elsewhere: AUTOMATIC1111 loads them itself."""
    if webui() == REFORGE:
        from . import forge

        forge.fill_reforge_depth_weights(sd_model)


def unet_input_placement(sd_model: Any) -> tuple[Any, Any]:
    """(device, dtype) for the conditioning the UNet gets. Forge 2's engine has no `dtype` and
    `shared.device` is None there; its KModel casts the concatenated input itself."""
    if uses_forge_backend():
        from . import forge

        return forge.unet_input_placement()
    from modules import shared

    return shared.device, sd_model.dtype


def webui_inputs() -> dict[str, tuple[str, str]]:
    """The WebUI inputs the preview reads: elem_id -> (tab, name) (ids.WEBUI_INPUTS; Forge's
    img2img canvases add their drawn foregrounds)."""
    from .ids import WEBUI_INPUTS

    if uses_forge_backend():
        from .forge import CANVAS_INPUTS

        return {**WEBUI_INPUTS, **CANVAS_INPUTS}
    return WEBUI_INPUTS


def capture_webui_input(components: dict[str, Any], component: Any, kwargs: dict[str, Any]) -> None:
    """Script.after_component: keep `component` in `components` if the preview reads it or it is an
    img2img sub-tab."""
    elem_id = kwargs.get("elem_id")
    if uses_forge_backend():
        from .forge import canvas_input_id

        elem_id = canvas_input_id(elem_id, kwargs.get("elem_classes"))
    from .ids import WEBUI_TABS

    if elem_id in webui_inputs() or elem_id in WEBUI_TABS:  # the img2img sub-tabs too (their select events)
        components[elem_id] = component


def tab_image_and_mask(tab: int, values: dict[str, Any]) -> tuple[Any, Any] | None:
    """Forge's img2img sub-tabs send canvases (image + drawn foreground), not AUTOMATIC1111's
    inputs: (image, mask) there, None elsewhere (preview.py reads AUTOMATIC1111's)."""
    if not uses_forge_backend():
        return None
    from .forge import tab_image_and_mask as forge_tab_image_and_mask

    return forge_tab_image_and_mask(tab, values)


def paste_field(component: Any, read: Callable[[dict], Any]) -> Any:
    """One `infotext_fields` entry (modules/infotext_utils.py PasteField)."""
    from modules.infotext_utils import PasteField

    return PasteField(component, read, api=None)


def find_crop_region(mask: Any, padding: int) -> tuple[int, int, int, int] | None:
    """The inpaint "only masked" region of a PIL mask, as StableDiffusionProcessingImg2Img.init
    finds it; None for an empty mask."""
    from modules import masking

    return masking.get_crop_region_v2(mask, padding)
