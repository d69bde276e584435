"""The accordion's preview: the button, a note saying what the picture shows, and the picture,
hidden until there is one. A preview never lies: when anything it was made from changes (the size,
the resize mode, the image, the mask, the img2img sub-tab, a depth setting) the note says the
preview is out of date until the next preview, and a sub-tab without an image shows no depth.
The preview's estimate goes into the shared cache, so the generation after it does not estimate again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..fields import FIELDS
from .compat import webui_inputs
from .ids import element_id
from .status import as_html

FRESH = "depth2img-fresh"  # the note's class while it describes the picture shown
STALE = "depth2img-stale"  # the note's class once it is out of date (style.css dims the picture then)
OUT_OF_DATE = (
    "The preview is out of date: {} changed since it was made. "
    "Press Preview depth for the depth the next generation will get."
)

# What changed, in the note's words, for the WebUI inputs the preview reads (ids.WEBUI_INPUTS names)
WEBUI_INPUT_CHANGES = {
    "width": "the size",
    "height": "the size",
    "resize_mode": "the resize mode",
    "mask_blur": "the mask",
    "mask_mode": "the mask",
    "inpaint_mask": "the mask",
    "only_masked": "the inpaint area",
    "padding": "the inpaint area",
    "inpainting_fill": "the masked content",
}
# our fields that change the depth, and what the note calls them
FIELD_CHANGES = {
    f.name: ("the depth map" if f.kind == "image" else f"the {f.label.lower()}")
    for f in FIELDS
    if f.infotext or f.kind == "image"
}
FIELD_CHANGES["enabled"] = "the Depth2img switch"


@dataclass
class Preview:
    button: Any
    color: Any
    note: Any
    image: Any
    tab_index: Any


def build_preview(tab: str) -> Preview:
    """The preview's components, inside the accordion (its last rows)."""
    import gradio as gr

    with gr.Row(elem_classes=["depth2img-preview-row"]):
        button = gr.Button(
            "Preview depth",
            elem_id=element_id(tab, "preview_button"),
            tooltip="show exactly the depth the next generation will use",
        )
        color = gr.Checkbox(
            False, label="Colour", elem_id=element_id(tab, "color"), tooltip="show the preview with a colour map"
        )
    note = gr.HTML(elem_id=element_id(tab, "preview_note"))
    image = gr.Image(
        label="Depth the model will get", interactive=False, visible=False, elem_id=element_id(tab, "preview")
    )
    # javascript/depth2img.js fills in the img2img sub-tab on screen when the button is pressed
    tab_index = gr.Number(value=0, visible=False, elem_id=element_id(tab, "preview_tab"))
    return Preview(button, color, note, image, tab_index)


def out_of_date(what: str):
    """A change listener's function: the note says the preview is out of date once there is one."""
    import gradio as gr

    def mark(note: str | None) -> Any:
        if FRESH not in (note or ""):
            return gr.update()  # no preview yet, or already out of date / an error: left as it is
        return as_html(f"depth2img-warn {STALE}", OUT_OF_DATE.format(what))

    return mark


def shown(result: tuple[Any, str]) -> tuple[Any, str]:
    """preview.preview's (picture, note html) as the outputs: the picture shown only when there is
    one, the note marked fresh while it describes it."""
    import gradio as gr

    picture, note = result
    if picture is None:
        return gr.update(value=None, visible=False), note
    return gr.update(value=picture, visible=True), note.replace("class='depth2img-ok'", f"class='depth2img-ok {FRESH}'")


def wire(script: Any, tab: str, components: dict[str, Any], preview: Preview) -> None:
    """The button's click (the field values, the colour switch, the WebUI inputs it reads) and the
    change listeners that mark the preview out of date."""
    from .preview import preview as make_preview

    inputs = webui_inputs()
    found = [(inputs[elem][1], c) for elem, c in script.components.items() if elem in inputs and inputs[elem][0] == tab]
    names = ["tab", *(f.name for f in FIELDS), "color", *(name for name, _ in found)]

    def run_preview(*values: Any) -> tuple[Any, str]:
        return shown(make_preview(dict(zip(names, values, strict=True)), tab == "img2img"))

    preview.button.click(
        fn=run_preview,
        _js="depth2imgPreviewArgs" if tab == "img2img" else None,
        inputs=[preview.tab_index, *(components[f.name] for f in FIELDS), preview.color, *(c for _, c in found)],
        outputs=[preview.image, preview.note],
    )
    watched = [(FIELD_CHANGES[name], c) for name, c in components.items() if name in FIELD_CHANGES]
    watched += [(WEBUI_INPUT_CHANGES.get(name, "the image"), c) for name, c in found if name != "batch_input_dir"]
    for what, component in watched:
        component.change(fn=out_of_date(what), inputs=[preview.note], outputs=[preview.note], show_progress=False)


def wire_sub_tabs(tabs: Iterable[Any], preview: Preview) -> None:
    """Another img2img sub-tab previews another image: the preview is out of date."""
    for item in tabs:
        item.select(fn=out_of_date("the img2img sub-tab"), inputs=[preview.note], outputs=[preview.note])
