"""The Depth2img accordion, built from the field table: one widget per field (its label, range,
step, choices, tooltip and when it is shown, from the row), the preview, and the infotext
paste-back pairs.

What shows where: the estimator controls only while the depth is estimated, the sequence controls
in a "Sequences" sub-accordion (percentile and smoothing only for the modes they act on), the
Batch-tab controls only in the img2img Batch sub-tab, the preview image only once there is one
(preview_ui.py keeps it honest).

Gradio 3.41 component arguments (the WebUI v1.10.1 pin; Forge patches gradio 4 to take them);
`tooltip=` is the WebUI's own addition to every component (modules/gradio_extensons.py).
"""

from __future__ import annotations

from typing import Any, Callable

from ..fields import BY_NAME, FIELDS, INFOTEXT_FIELDS, INFOTEXT_KEY, Field
from ..settings import DepthSettings
from . import download_offer, options, preview_ui
from .ids import WEBUI_TABS, element_id
from .status import as_html, status_html

# rows of the accordion, by field name; a field missing here gets a (hidden) row of its own at the end
MAIN_ROWS: tuple[tuple[str, ...], ...] = (
    ("source", "masked_area"),
    ("image",),
    ("estimator", "resolution"),  # with the estimator's download offer, in one block shown while estimating
    ("invert", "save_depth"),
    ("far", "near"),
    ("gamma", "blur"),
)
SEQUENCE_ROWS: tuple[tuple[str, ...], ...] = (("normalise", "percentile", "time_constant"),)
BATCH_ROW: tuple[str, ...] = ("depth_folder", "missing_map")  # the img2img Batch sub-tab only
ESTIMATION_ROW = ("estimator", "resolution")
BATCH_TAB = WEBUI_TABS["img2img_batch_tab"]
SEQUENCES_HELP = (
    "How the images of one batch, or the frames of the img2img Batch tab, share a depth range. "
    "Per image is what the model was trained with; shared and smoothed keep a sequence from flickering."
)


def initial_values(tab: str) -> dict[str, Any]:
    """The fields' values when the accordion is built (what `Field.shown` decides from)."""
    return {f.name: f.default_for(tab) for f in FIELDS}


def widget(f: Field, tab: str, *, visible: bool | None = None) -> Any:
    """The gradio component of one field on one tab (shown where the table says, unless `visible`)."""
    import gradio as gr

    common = {"label": f.label_for(tab), "elem_id": element_id(tab, f.name), "tooltip": f.help}
    if visible is None:
        visible = tab in f.tabs and f.shown(initial_values(tab))
    if f.kind == "bool":
        value = bool(options.read("depth2img_save_default")) if f.name == "save_depth" else f.default
        return gr.Checkbox(value, visible=visible, **common)
    if f.widget == "dropdown":
        choices = list(f.choices_for(tab)) or [f.to_ui(value) for value in (*f.words, *f.suggestions)]
        custom = f.kind != "choice"  # a number not in the list can be typed
        value = f.to_ui(f.default_for(tab))
        return gr.Dropdown(choices, value=value, allow_custom_value=custom, visible=visible, **common)
    if f.kind in ("float", "int"):
        low, high = f.bounds
        return gr.Slider(low, high, value=f.default, step=f.step, visible=visible, **common)
    if f.kind == "text":
        return gr.Textbox(f.default, lines=1, max_lines=1, visible=visible and not f.mirrors, **common)
    if f.kind == "choice":
        return gr.Radio(list(f.choices_for(tab)), value=f.default_for(tab), visible=visible, **common)
    # the map or photo: shown where the source needs it (txt2img always, img2img for "upload")
    return gr.Image(type="pil", image_mode=None, source="upload", visible=visible, **common)


def build(script: Any, is_img2img: bool) -> list[Any]:
    """Script.ui: the accordion's components in the field table's order (the script's args).

    `script.components` holds the WebUI inputs and img2img sub-tabs captured by after_component
    (compat.capture_webui_input); sets `script.infotext_fields`.
    """
    import gradio as gr
    from modules.ui_components import InputAccordion

    from .compat import unsupported_reason

    tab = "img2img" if is_img2img else "txt2img"
    reason = unsupported_reason()
    if reason:  # one line instead of an accordion that could not work
        gr.HTML(as_html("depth2img-warn", reason), elem_id=element_id(tab, "unsupported"))
        script.infotext_fields = []
        return []
    components: dict[str, Any] = {}
    blocks: dict[str, Any] = {}  # what a field's visibility switches: its block where it has one

    def rows(layout: tuple[tuple[str, ...], ...]) -> None:
        for row in layout:
            if row == ESTIMATION_ROW:
                shown = BY_NAME["estimator"].shown(initial_values(tab))
                with gr.Column(visible=shown, elem_id=element_id(tab, "estimation")) as estimation:
                    with gr.Row():
                        for name in row:
                            components[name] = widget(BY_NAME[name], tab, visible=True)
                            blocks[name] = estimation
                    download_offer.build_estimator_offer(tab, components["estimator"])
                continue
            with gr.Row():
                for name in row:
                    components[name] = widget(BY_NAME[name], tab)

    # the accordion is the "enabled" field: closed by default, open means the user's settings apply
    with InputAccordion(False, label="Depth2img", elem_id=element_id(tab, "enabled")) as enabled:
        components["enabled"] = enabled
        status = gr.HTML(elem_id=element_id(tab, "status"), elem_classes=["depth2img-status"])
        download_offer.build_offer(tab, status)  # the depth model download, shown when no depth checkpoint is installed
        refresh = gr.Button("Refresh status", elem_id=element_id(tab, "refresh"), elem_classes=["depth2img-hidden"])
        rows(MAIN_ROWS)
        with gr.Accordion("Sequences", open=False, elem_id=element_id(tab, "sequences")):
            gr.HTML(as_html("depth2img-help", SEQUENCES_HELP), elem_id=element_id(tab, "sequences_help"))
            rows(SEQUENCE_ROWS)
            batch_row = None
            if is_img2img:
                with gr.Row(visible=False, elem_id=element_id(tab, "batch")) as batch_row:
                    for name in BATCH_ROW:
                        components[name] = widget(BY_NAME[name], tab, visible=True)
        for f in FIELDS:  # the rest: hidden mirrors of WebUI inputs, fields another tab shows
            if f.name not in components:
                components[f.name] = widget(f, tab)
        preview = preview_ui.build_preview(tab)

    wire_visibility(tab, components, blocks)
    enabled.change(fn=lambda on: status_html() if on else gr.update(), inputs=[enabled], outputs=[status])
    refresh.click(fn=status_html, outputs=[status], show_progress=False)
    preview_ui.wire(script, tab, components, preview)
    tabs = sub_tabs(script)
    if batch_row is not None:
        for index, item in tabs.items():  # the Batch-tab controls follow the img2img sub-tab
            item.select(fn=lambda shown=index == BATCH_TAB: gr.update(visible=shown), outputs=[batch_row])
    preview_ui.wire_sub_tabs(tabs.values(), preview)
    for f in FIELDS:  # hidden copies of the WebUI's own inputs (the Batch tab's input directory)
        source = script.components.get(f.mirrors) if f.mirrors and tab in f.tabs else None
        if source is not None:
            source.change(fn=lambda value: value, inputs=[source], outputs=[components[f.name]], show_progress=False)
    script.infotext_fields = paste_fields(components, tab)
    return [components[f.name] for f in FIELDS]


def sub_tabs(script: Any) -> dict[int, Any]:
    """The img2img sub-tabs after_component captured: {index (modules/ui.py order): TabItem}."""
    return {index: script.components[elem] for elem, index in WEBUI_TABS.items() if elem in script.components}


def visibility(tab: str, controller: str) -> tuple[list[Field], Callable[[Any], list[Any]]]:
    """The fields on `tab` whose visibility `controller` decides, and the change listener's function
    (one update per field, from `Field.shown`)."""
    import gradio as gr

    dependants = [f for f in FIELDS if controller in f.shown_when and tab in f.tabs]

    def update(value: Any) -> list[Any]:
        values = {**initial_values(tab), controller: value}
        return [gr.update(visible=f.shown(values)) for f in dependants]

    return dependants, update


def wire_visibility(tab: str, components: dict[str, Any], blocks: dict[str, Any]) -> None:
    """Each field with `shown_when` follows the fields it names (its block where it sits in one)."""
    controllers = sorted({name for f in FIELDS for name in f.shown_when})
    for controller in controllers:
        dependants, update = visibility(tab, controller)
        targets, seen = [], set()
        for f in dependants:  # one update per block: the estimator and resolution share one
            target = blocks.get(f.name, components[f.name])
            targets.append(None if id(target) in seen else target)
            seen.add(id(target))

        def listener(value: Any, update=update, targets=targets) -> list[Any]:
            return [u for u, target in zip(update(value), targets, strict=True) if target is not None]

        outputs = [target for target in targets if target is not None]
        components[controller].change(fn=listener, inputs=[components[controller]], outputs=outputs)


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
        return f.to_ui(value)

    return read


def paste_fields(components: dict[str, Any], tab: str) -> list[Any]:
    """(component, reader) pairs for infotext paste-back. The accordion opens exactly when the
    infotext has a Depth2img parameter (a callable, so a missing key closes it: refiner.py does so)."""
    from .compat import paste_field

    pairs = [(components["enabled"], lambda params: INFOTEXT_KEY in params)]
    pairs += [(components[f.name], pasted(f, tab)) for f in INFOTEXT_FIELDS]
    return [paste_field(component, read) for component, read in pairs]
