"""Every check of which WebUI this is, in one place.

Supported: AUTOMATIC1111 1.9 and later. What we rely on that older versions lack:
`modules.infotext_utils.PasteField` (1.8), `modules.ui_components.InputAccordion` (1.7) and
`modules.masking.get_crop_region_v2` (1.9), the inpaint "only masked" region finder that takes
a PIL mask. On an older WebUI the accordion shows `unsupported_reason()` and nothing else runs.
"""

from __future__ import annotations

from typing import Any, Callable

SUPPORTED = "AUTOMATIC1111 WebUI 1.9 or later"


def unsupported_reason() -> str | None:
    """None where this WebUI has what the extension needs, else one line saying what is missing."""
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


def paste_field(component: Any, read: Callable[[dict], Any]) -> Any:
    """One `infotext_fields` entry (modules/infotext_utils.py PasteField)."""
    from modules.infotext_utils import PasteField

    return PasteField(component, read, api=None)


def find_crop_region(mask: Any, padding: int) -> tuple[int, int, int, int] | None:
    """The inpaint "only masked" region of a PIL mask, as StableDiffusionProcessingImg2Img.init
    finds it; None for an empty mask."""
    from modules import masking

    return masking.get_crop_region_v2(mask, padding)
