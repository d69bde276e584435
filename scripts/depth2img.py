"""sd-webui-depth2img: WebUI wiring. The work happens in lib_depth; this file only connects it."""

from __future__ import annotations

import html
import logging
import time

import gradio as gr
import ldm.modules.midas.api as midas_api
from modules import devices, script_callbacks, scripts, sd_models, shared
from modules.ui_components import InputAccordion

from lib_depth.api import build_router, parse_estimate_request
from lib_depth.cache import DepthCache
from lib_depth.depthmap import colorize, conditioning_to_png16, conditioning_to_previews
from lib_depth.element_ids import element_id
from lib_depth.estimator import DepthEstimator
from lib_depth.generation import DepthInputError, DepthRun, WebUIHooks, install
from lib_depth.payload import PayloadError, encode_png, limits_from_options
from lib_depth.script_args import ARG_NAMES, read_script_args
from lib_depth.settings import (
    BLUR_RANGE,
    GAMMA_RANGE,
    INFOTEXT_KEY,
    MASKED_AREA_MODES,
    DepthSettings,
)
from lib_depth.webui import (
    checkpoint_key,
    conditioning_for_request,
    depth_map_for_saved_image,
    doctor_rows,
    install_offline_midas,
    is_depth_model,
    placed,
    prepare_init_image,
    selected_checkpoint_has_depth_weights,
    status_line,
    tab_image_and_mask,
)

try:  # WebUI 1.8+
    from modules.infotext_utils import PasteField
except ImportError:  # 1.7 and older take (component, key) pairs
    PasteField = None

log = logging.getLogger("sd-webui-depth2img")

# The WebUI's own inputs the preview reads: elem_id (modules/ui.py, v1.10.1) -> (tab, name).
WEBUI_INPUTS = {
    "txt2img_width": ("txt2img", "width"),
    "txt2img_height": ("txt2img", "height"),
    "img2img_width": ("img2img", "width"),
    "img2img_height": ("img2img", "height"),
    "resize_mode": ("img2img", "resize_mode"),
    "img2img_image": ("img2img", "init"),
    "img2img_sketch": ("img2img", "sketch"),
    "img2maskimg": ("img2img", "inpaint"),
    "inpaint_sketch": ("img2img", "inpaint_sketch"),
    "img_inpaint_base": ("img2img", "inpaint_base"),
    "img_inpaint_mask": ("img2img", "inpaint_mask"),
    "img2img_inpaint_full_res": ("img2img", "only_masked"),
    "img2img_inpaint_full_res_padding": ("img2img", "padding"),
    "img2img_mask_blur": ("img2img", "mask_blur"),
    "img2img_mask_mode": ("img2img", "mask_mode"),
    "img2img_inpainting_fill": ("img2img", "inpainting_fill"),
}
CACHE = DepthCache()

# Depth checkpoints carry their MiDaS weights: build the depth model without the 470 MB file.
script_callbacks.on_script_unloaded(install_offline_midas(midas_api, selected_checkpoint_has_depth_weights))


def option(name: str, default):
    return getattr(shared.opts, name, default)


def limits() -> dict:
    return limits_from_options(
        option("depth2img_max_megapixels", 0), option("img_max_size_mp", 0), option("depth2img_max_upload_mb", 0)
    )


def make_estimator(sd_model) -> DepthEstimator:
    CACHE.resize(int(option("depth2img_cache_entries", 16)), CACHE.max_bytes)
    device = "cpu" if option("depth2img_device", "auto") == "cpu" else devices.device
    managed = bool(getattr(shared.cmd_opts, "lowvram", False) or getattr(shared.cmd_opts, "medvram", False))
    depth_model = sd_model.depth_model
    return DepthEstimator(
        depth_model,
        key=checkpoint_key(sd_model),
        cache=CACHE,
        around_forward=lambda: placed(
            depth_model, device=device, offload=option("depth2img_offload", False), managed=managed
        ),
    )


def make_run(sd_model, settings: DepthSettings, image=None, error: str | None = None) -> DepthRun:
    estimator = make_estimator(sd_model) if is_depth_model(sd_model) else None
    hooks = WebUIHooks(prepare_init_image=prepare_init_image, device=shared.device, dtype=sd_model.dtype)
    return DepthRun(settings, estimator, hooks, image=image, error=error)


def status_html() -> str:
    """One line for the accordion: is a depth model loaded, and which installed ones are usable."""
    sd_model = shared.sd_model
    loaded = getattr(getattr(sd_model, "sd_checkpoint_info", None), "name_for_extra", None)
    if is_depth_model(sd_model):
        css, text = status_line(loaded or "depth model", [])
    else:
        css, text = status_line(
            None, doctor_rows([info.filename for info in list(sd_models.checkpoints_list.values())])
        )
    return f"<span class='{css}'>{html.escape(text)}</span>"


class Depth2ImgScript(scripts.Script):
    def __init__(self) -> None:
        self.components: dict[str, gr.components.Component] = {}

    def title(self) -> str:
        return "Depth2img"

    def show(self, is_img2img: bool):
        return scripts.AlwaysVisible

    def after_component(self, component, **kwargs) -> None:
        if kwargs.get("elem_id") in WEBUI_INPUTS:
            self.components[kwargs["elem_id"]] = component

    def ui(self, is_img2img: bool):
        tab = "img2img" if is_img2img else "txt2img"

        def eid(name: str) -> str:
            return element_id(tab, name)

        sources = ["estimate", "upload"] if is_img2img else ["upload", "reference"]
        with InputAccordion(False, label="Depth2img", elem_id=eid("enabled")) as enabled:
            status = gr.HTML(elem_id=eid("status"))
            refresh = gr.Button("Refresh status", elem_id=eid("refresh"), elem_classes=["depth2img-hidden"])
            with gr.Row():
                source = gr.Radio(
                    sources,
                    value=sources[0],
                    label="Depth source",
                    elem_id=eid("source"),
                    tooltip="estimate: MiDaS depth of the init image; upload: your own depth map "
                    "(white = near); reference: the depth of another photo",
                )
                masked_area = gr.Radio(
                    list(MASKED_AREA_MODES),
                    value="original",
                    label="Masked area depth",
                    visible=is_img2img,
                    elem_id=eid("masked_area"),
                    tooltip="inpaint: estimate the masked area's depth from the original pixels "
                    "(keeps the composition) or from the image as the WebUI filled it",
                )
            image = gr.Image(
                label="Depth map" if is_img2img else "Depth map / reference image",
                type="pil",
                image_mode=None,
                source="upload",
                visible=not is_img2img,
                elem_id=eid("image"),
                tooltip="8/16-bit grayscale, RGB or palette; white = near. In txt2img with "
                "'reference', a photo whose depth is estimated",
            )
            with gr.Row():
                invert = gr.Checkbox(
                    False,
                    label="Invert",
                    elem_id=eid("invert"),
                    tooltip="flip near and far (for maps where black = near)",
                )
                save_depth = gr.Checkbox(
                    bool(option("depth2img_save_default", False)),
                    label="Save depth map",
                    elem_id=eid("save_depth"),
                    tooltip="save the depth map next to each output as <name>-depth.png",
                )
            with gr.Row():
                far = gr.Slider(
                    0.0,
                    0.99,
                    value=0.0,
                    step=0.01,
                    label="Far level",
                    elem_id=eid("far"),
                    tooltip="depth (0..1) that becomes farthest; anything farther is clipped",
                )
                near = gr.Slider(
                    0.01,
                    1.0,
                    value=1.0,
                    step=0.01,
                    label="Near level",
                    elem_id=eid("near"),
                    tooltip="depth (0..1) that becomes nearest; anything nearer is clipped",
                )
            with gr.Row():
                gamma = gr.Slider(
                    *GAMMA_RANGE,
                    value=1.0,
                    step=0.05,
                    label="Gamma",
                    elem_id=eid("gamma"),
                    tooltip="above 1 pushes mid depths back, below 1 pulls them forward",
                )
                blur = gr.Slider(
                    *BLUR_RANGE,
                    value=0.0,
                    step=1.0,
                    label="Blur",
                    elem_id=eid("blur"),
                    tooltip="Gaussian blur radius in image pixels: softens depth edges",
                )
            with gr.Row(elem_classes=["depth2img-preview-row"]):
                preview_button = gr.Button(
                    "Preview depth",
                    elem_id=eid("preview_button"),
                    tooltip="show exactly the depth the next generation will use",
                )
                color = gr.Checkbox(
                    False, label="Colour", elem_id=eid("color"), tooltip="show the preview with a colour map"
                )
            preview = gr.Image(label="Depth the model will get", interactive=False, elem_id=eid("preview"))

        source.change(fn=lambda s: gr.update(visible=s != "estimate"), inputs=[source], outputs=[image])
        enabled.change(fn=lambda on: status_html() if on else gr.update(), inputs=[enabled], outputs=[status])
        refresh.click(fn=status_html, outputs=[status], show_progress=False)

        # the WebUI's own inputs the preview needs (size, init image or mask per sub-tab, inpaint options)
        found = [(WEBUI_INPUTS[elem][1], c) for elem, c in self.components.items() if WEBUI_INPUTS[elem][0] == tab]
        control_names = ["source", "invert", "near", "far", "gamma", "blur", "masked_area", "image", "color"]
        controls = [source, invert, near, far, gamma, blur, masked_area, image, color]
        names = ["tab"] + control_names + [name for name, _ in found]
        tab_index = gr.Number(value=0, visible=False)

        def run_preview(*values):
            return self.preview(dict(zip(names, values, strict=True)), is_img2img)

        preview_button.click(
            fn=run_preview,
            _js="depth2imgPreviewArgs" if is_img2img else None,  # fills in the img2img sub-tab
            inputs=[tab_index] + controls + [c for _, c in found],
            outputs=[preview, status],
        )

        def pasted(name: str):
            def read(params: dict):
                text = params.get(INFOTEXT_KEY)
                if not text:
                    return None
                try:
                    return getattr(DepthSettings.from_infotext(text), name)
                except ValueError:
                    return None

            return read

        pairs = [(enabled, lambda params: INFOTEXT_KEY in params)] + [
            (component, pasted(name))
            for component, name in (
                (source, "source"),
                (invert, "invert"),
                (near, "near"),
                (far, "far"),
                (gamma, "gamma"),
                (blur, "blur"),
                (masked_area, "masked_area"),
            )
        ]
        self.infotext_fields = [PasteField(c, f) for c, f in pairs] if PasteField else pairs
        return [enabled, source, invert, near, far, gamma, blur, masked_area, save_depth, image]

    def preview(self, values: dict, is_img2img: bool):
        """The depth the next generation will use, for the accordion (image, status html)."""
        started = time.perf_counter()
        try:
            settings = DepthSettings(
                **{k: values[k] for k in ("source", "invert", "near", "far", "gamma", "blur", "masked_area")}
            )
            sd_model = shared.sd_model
            if not is_depth_model(sd_model):
                return None, status_html()
            width, height = int(values.get("width") or 512), int(values.get("height") or 512)
            init_image, mask = tab_image_and_mask(int(values.get("tab") or 0), values) if is_img2img else (None, None)
            inpaint = {}
            if mask is not None:  # Radio components with type="index"
                inpaint = {
                    "mask": mask,
                    "only_masked": values.get("only_masked") == 1,
                    "padding": int(values.get("padding") or 0),
                    "mask_blur": int(values.get("mask_blur") or 0),
                    "invert_mask": values.get("mask_mode") == 1,
                    "fill": values.get("inpainting_fill", 1) != 1,
                }
            hits = CACHE.stats().hits
            conditioning = conditioning_for_request(
                make_run(sd_model, settings, values.get("image")),
                init_image=init_image,
                width=width,
                height=height,
                resize_mode=int(values.get("resize_mode") or 0),
                **inpaint,
            )
            picture = conditioning_to_previews(conditioning, (height, width))[0]
            cached = " (from cache)" if CACHE.stats().hits > hits else ""
            seconds = time.perf_counter() - started
            note = f"Depth for {width}x{height}{cached}, {seconds:.1f} s. White = near."
            return (colorize(picture) if values.get("color") else picture), f"<span class='depth2img-ok'>{note}</span>"
        except (ValueError, DepthInputError) as error:
            return None, f"<span class='depth2img-warn'>{html.escape(str(error))}</span>"

    def process(self, p, *args):
        request, error = read_script_args(args, **limits())
        enabled = request is not None or error is not None
        if not is_depth_model(p.sd_model):
            if enabled:
                log.warning("Depth2img is enabled but the loaded model is not a depth model; it has no effect.")
            return
        # With a depth model our conditioning always replaces the WebUI's (per-image depth, no
        # float16 crash); the accordion adds the user's settings, infotext and saving.
        settings = request.settings if request else DepthSettings(enabled=enabled)
        run = make_run(p.sd_model, settings, request.image if request else None, error)
        install(p, run, translate_error=http_error if getattr(p, "is_api", False) else None)
        if enabled:
            p.extra_generation_params[INFOTEXT_KEY] = settings.to_infotext()


def http_error(error: Exception) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=422, detail=str(error))


def save_depth_map(params) -> None:
    """Beside each saved output of a run with "Save depth map": <output name>-depth.png (16-bit)."""
    found = depth_map_for_saved_image(params.p, params.filename, params.image.size)
    if found:
        path, image = found
        image.save(path)
        log.info("Depth2img: saved %s", path)


def on_ui_settings() -> None:
    section = ("depth2img", "Depth2img")
    shared.opts.add_option(
        "depth2img_cache_entries",
        shared.OptionInfo(
            16,
            "Depth cache size (images kept, 0 = off)",
            gr.Slider,
            {"minimum": 0, "maximum": 256, "step": 1},
            section=section,
        ),
    )
    shared.opts.add_option(
        "depth2img_device",
        shared.OptionInfo(
            "auto", "Depth estimation device", gr.Radio, {"choices": ["auto", "cpu"]}, section=section
        ).info("auto: where the WebUI runs models; cpu: saves GPU memory, slower (ignored under --lowvram/--medvram)"),
    )
    shared.opts.add_option(
        "depth2img_offload",
        shared.OptionInfo(False, "Move the depth model to the CPU after each estimate", section=section).info(
            "frees GPU memory"
        ),
    )
    shared.opts.add_option(
        "depth2img_save_default",
        shared.OptionInfo(False, "Save depth maps next to outputs by default", section=section),
    )


def api_estimate(payload: dict) -> dict:
    request = parse_estimate_request(payload, **limits())
    settings, image, width, height = request.settings, request.image, request.width, request.height
    resize_mode = request.resize_mode
    sd_model = shared.sd_model
    if not is_depth_model(sd_model):
        raise PayloadError("the loaded model is not a depth model; load a depth checkpoint first")
    user_image = None if settings.source == "estimate" else image
    from modules.call_queue import queue_lock

    with queue_lock:
        conditioning = conditioning_for_request(
            make_run(sd_model, settings, user_image),
            init_image=image,
            width=width,
            height=height,
            resize_mode=resize_mode,
        )
    return {
        "depth": encode_png(conditioning_to_png16(conditioning, (height, width))[0]),
        "preview": encode_png(conditioning_to_previews(conditioning, (height, width))[0]),
        "width": width,
        "height": height,
        "info": settings.to_infotext(),
    }


def api_status() -> dict:
    sd_model = shared.sd_model
    rows = doctor_rows([info.filename for info in list(sd_models.checkpoints_list.values())])
    return {
        "depth_model_loaded": is_depth_model(sd_model),
        "checkpoint": getattr(getattr(sd_model, "sd_checkpoint_info", None), "name", None),
        "cache": CACHE.stats().__dict__,
        "checkpoints": [row.to_dict() for row in rows],
        "args": list(ARG_NAMES),
    }


def on_app_started(demo, app) -> None:
    cmd_opts = shared.cmd_opts
    if not (getattr(cmd_opts, "api", False) or getattr(cmd_opts, "nowebui", False)):
        return  # like the WebUI's own API, only with --api
    app.include_router(build_router(estimate=api_estimate, status=api_status, api_auth=cmd_opts.api_auth))


script_callbacks.on_image_saved(save_depth_map)
script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(on_app_started)
