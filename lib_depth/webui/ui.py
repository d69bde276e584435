"""The Depth2img accordion, built from the field table: one widget per field (its label, range,
step, choices and tooltip from the row), the preview, and the infotext paste-back pairs.

Gradio 3.41 component arguments (the WebUI v1.10.1 pin); `tooltip=` is the WebUI's own addition
to every component (modules/gradio_extensons.py).
"""

from __future__ import annotations

from typing import Any, Callable

from ..fields import FIELDS, INFOTEXT_FIELDS, INFOTEXT_KEY, Field
from ..io.depth_files import DEPTH_MAP_FILE_TYPES
from ..settings import DepthSettings
from . import download_offer, options
from .compat import webui_inputs
from .ids import element_id
from .status import as_html, status_html

# rows of the accordion, by field name; a field missing here gets a row of its own at the end
LAYOUT: tuple[tuple[str, ...], ...] = (
    ("source", "masked_area"),
    ("image", "depth_kind"),
    ("invert", "save_depth"),
    ("far", "near"),
    ("gamma", "blur"),
    ("estimator", "resolution"),
    ("normalise", "percentile", "time_constant"),
    ("depth_folder", "missing_map"),
)


def widget(f: Field, tab: str) -> Any:
    """The gradio component of one field on one tab."""
    import gradio as gr

    common = {"label": f.label_for(tab), "elem_id": element_id(tab, f.name), "tooltip": f.help}
    visible = tab in f.tabs
    if f.kind == "bool":
        value = bool(options.read("depth2img_save_default")) if f.name == "save_depth" else f.default
        return gr.Checkbox(value, visible=visible, **common)
    if f.kind in ("float", "int"):
        low, high = f.bounds
        return gr.Slider(low, high, value=f.default, step=f.step, visible=visible, **common)
    if f.kind == "text":
        return gr.Textbox(f.default, lines=1, max_lines=1, visible=visible and not f.mirrors, **common)
    if f.name == "depth_kind":  # beside the upload it describes: shown with source "upload"
        visible = tab == "txt2img"
    if f.kind == "choice":
        return gr.Radio(list(f.choices_for(tab)), value=f.default_for(tab), visible=visible, **common)
    # the map or photo: shown where the source needs it (txt2img always, img2img for "upload"). A file,
    # not gr.Image: that converts every upload through the browser and PIL, so a float map would lose
    # its precision (and OpenEXR, .npy could not be sent at all). Its bytes are decoded by payload.py.
    return gr.File(type="binary", file_types=list(DEPTH_MAP_FILE_TYPES), visible=tab == "txt2img", **common)


def build(script: Any, is_img2img: bool) -> list[Any]:
    """Script.ui: the accordion's components in the field table's order (the script's args).

    `script.components` holds the WebUI inputs captured by after_component (compat.webui_inputs);
    sets `script.infotext_fields`.
    """
    import gradio as gr
    from modules.ui_components import InputAccordion

    from .compat import unsupported_reason

    tab = "img2img" if is_img2img else "txt2img"
    reason = unsupported_reason()
    if reason:  # one line instead of an accordion that could not work
        gr.HTML(as_html("depth2img-warn", reason))
        script.infotext_fields = []
        return []
    components: dict[str, Any] = {}
    # the accordion is the "enabled" field: closed by default, open means the user's settings apply
    with InputAccordion(False, label="Depth2img", elem_id=element_id(tab, "enabled")) as enabled:
        components["enabled"] = enabled
        status = gr.HTML(elem_classes=["depth2img-status"])
        download_offer.build_offer(tab, status)  # the depth model download, shown when no depth checkpoint is installed
        refresh = gr.Button("Refresh status", elem_id=element_id(tab, "refresh"), elem_classes=["depth2img-hidden"])
        placed = {name for row in LAYOUT for name in row}
        rows = list(LAYOUT) + [(f.name,) for f in FIELDS if f.name not in placed and f.name != "enabled"]
        for row in rows:
            with gr.Row():
                for name in row:
                    components[name] = widget(next(f for f in FIELDS if f.name == name), tab)
            if "estimator" in row:  # what a chosen estimator without weights needs, and a confirm button
                download_offer.build_estimator_offer(tab, components["estimator"])
        with gr.Row(elem_classes=["depth2img-preview-row"]):
            preview_button = gr.Button(
                "Preview depth",
                elem_id=element_id(tab, "preview_button"),
                tooltip="show exactly the depth the next generation will use",
            )
            color = gr.Checkbox(
                False, label="Colour", elem_id=element_id(tab, "color"), tooltip="show the preview with a colour map"
            )
        preview_image = gr.Image(
            label="Depth the model will get", interactive=False, elem_id=element_id(tab, "preview")
        )

    components["source"].change(
        fn=lambda source: (gr.update(visible=source != "estimate"), gr.update(visible=source == "upload")),
        inputs=[components["source"]],
        outputs=[components["image"], components["depth_kind"]],
    )
    enabled.change(fn=lambda on: status_html() if on else gr.update(), inputs=[enabled], outputs=[status])
    refresh.click(fn=status_html, outputs=[status], show_progress=False)
    _wire_preview(script, tab, components, color, preview_button, preview_image, status)
    for f in FIELDS:  # hidden copies of the WebUI's own inputs (the Batch tab's input directory)
        source = script.components.get(f.mirrors) if f.mirrors and tab in f.tabs else None
        if source is not None:
            source.change(fn=lambda value: value, inputs=[source], outputs=[components[f.name]], show_progress=False)
    script.infotext_fields = paste_fields(components, tab)
    return [components[f.name] for f in FIELDS]


def _wire_preview(script, tab, components, color, button, image, status) -> None:
    import gradio as gr

    from .preview import preview

    inputs = webui_inputs()
    found = [(inputs[elem][1], c) for elem, c in script.components.items() if inputs[elem][0] == tab]
    names = ["tab", *(f.name for f in FIELDS), "color", *(name for name, _ in found)]
    tab_index = gr.Number(value=0, visible=False)  # javascript/depth2img.js fills in the img2img sub-tab

    def run_preview(*values: Any) -> tuple[Any, str]:
        return preview(dict(zip(names, values, strict=True)), tab == "img2img")

    button.click(
        fn=run_preview,
        _js="depth2imgPreviewArgs" if tab == "img2img" else None,
        inputs=[tab_index, *(components[f.name] for f in FIELDS), color, *(c for _, c in found)],
        outputs=[image, status],
    )


def pasted(f: Field, tab: str) -> Callable[[dict], Any]:
    """Reads one field from a pasted infotext's Depth2img parameter; None leaves the control.
    A choice this tab does not offer (img2img's source=estimate pasted into txt2img) is left out too:
    the radio would otherwise show no choice at all."""

    def read(params: dict) -> Any:
        text = params.get(INFOTEXT_KEY)
        if not text:
            return None
        try:
            value = getattr(DepthSettings.from_infotext(text), f.name)
        except ValueError:
            return None
        if f.kind == "choice" and value not in f.choices_for(tab):
            return None
        return value

    return read


def paste_fields(components: dict[str, Any], tab: str) -> list[Any]:
    """(component, reader) pairs for infotext paste-back. The accordion opens exactly when the
    infotext has a Depth2img parameter (a callable, so a missing key closes it: refiner.py does so)."""
    from .compat import paste_field

    pairs = [(components["enabled"], lambda params: INFOTEXT_KEY in params)]
    pairs += [(components[f.name], pasted(f, tab)) for f in INFOTEXT_FIELDS]
    return [paste_field(component, read) for component, read in pairs]
