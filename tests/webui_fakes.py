"""Stand-ins for the WebUI's own API surface (AUTOMATIC1111 v1.10.1) and for gradio 3.41.2, for
the glue and script tiers. Each mirrors the behaviour of the file named beside it, written anew
from that behaviour, and only as far as the extension uses it. `install(monkeypatch)` puts them
into sys.modules for one test.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import threading
import types
from collections import namedtuple
from copy import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image, ImageFilter, ImageOps

# --- gradio 3.41.2 (gradio/components/*.py, gradio/blocks.py, gradio/events.py) ----------------
# Keyword-only arguments of each component's __init__ in 3.41.2, so that an argument that exists
# only in gradio 4 (e.g. Image(sources=...)) fails here as it fails in the WebUI. `tooltip` is the
# WebUI's own addition to every component (modules/gradio_extensons.py).
_COMMON = ("label", "info", "every", "show_label", "container", "scale", "min_width", "interactive", "visible")
_GRADIO_KWARGS = {
    "Checkbox": (*_COMMON, "elem_id", "elem_classes"),
    "Slider": (*_COMMON, "step", "elem_id", "elem_classes", "randomize"),
    "Radio": (*_COMMON, "value", "type", "elem_id", "elem_classes"),
    "Image": (
        "shape",
        "height",
        "width",
        "image_mode",
        "invert_colors",
        "source",
        "tool",
        "type",
        "label",
        "every",
        "show_label",
        "show_download_button",
        "container",
        "scale",
        "min_width",
        "interactive",
        "visible",
        "streaming",
        "elem_id",
        "elem_classes",
        "mirror_webcam",
        "brush_radius",
        "brush_color",
        "mask_opacity",
        "show_share_button",
    ),  # fmt: skip
    "HTML": ("label", "every", "show_label", "visible", "elem_id", "elem_classes"),
    "File": ("file_count", "file_types", "type", *_COMMON, "height", "elem_id", "elem_classes"),  # components/file.py
    "Button": (
        "variant",
        "size",
        "icon",
        "link",
        "visible",
        "interactive",
        "elem_id",
        "elem_classes",
        "scale",
        "min_width",
    ),  # fmt: skip
    "Number": (*_COMMON, "elem_id", "elem_classes", "precision", "minimum", "maximum", "step"),
    "Dropdown": (
        "value",
        "type",
        "multiselect",
        "allow_custom_value",
        "max_choices",
        *_COMMON,
        "elem_id",
        "elem_classes",
    ),  # fmt: skip
    "Textbox": (
        "lines",
        "max_lines",
        "placeholder",
        *_COMMON,
        "elem_id",
        "autofocus",
        "elem_classes",
        "type",
        "text_align",
        "rtl",
        "show_copy_button",
    ),  # fmt: skip
}
_POSITIONAL = {"Slider": ("minimum", "maximum", "value"), "Radio": ("choices",), "Dropdown": ("choices",)}
_LISTENER_KWARGS = {
    "fn", "inputs", "outputs", "api_name", "status_tracker", "scroll_to_output", "show_progress", "queue", "batch",
    "max_batch_size", "preprocess", "postprocess", "cancels", "every", "_js",
}  # fmt: skip


class Context:
    """gr.Row / gr.Accordion / gr.Blocks: layout blocks used as context managers."""

    opened: list[Any] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        Context.opened.append(self)

    @property
    def elem_id(self) -> str | None:
        return self.kwargs.get("elem_id")

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class Component:
    """One gradio component: its arguments, and the listeners attached to it."""

    created: list[Component] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kind = next(c.__name__ for c in type(self).__mro__ if c.__name__ in _GRADIO_KWARGS)
        names = _POSITIONAL.get(kind, ("value",))
        unknown = set(kwargs) - set(_GRADIO_KWARGS[kind]) - set(names) - {"tooltip"}
        if unknown:
            raise TypeError(f"gradio 3.41.2 {kind}() got unexpected keyword argument(s) {sorted(unknown)}")
        if len(args) > len(names):
            raise TypeError(f"gradio 3.41.2 {kind}() takes at most {len(names)} positional arguments")
        self.kwargs = {**dict(zip(names, args, strict=False)), **kwargs}
        self.listeners: dict[str, list[dict]] = {}
        Component.created.append(self)

    def _listen(self, event: str, **kwargs: Any) -> Dependency:
        unknown = set(kwargs) - _LISTENER_KWARGS
        if unknown:
            raise TypeError(f"gradio 3.41.2 .{event}() got unexpected keyword argument(s) {sorted(unknown)}")
        self.listeners.setdefault(event, []).append(kwargs)
        return Dependency(self, kwargs)

    def change(self, **kwargs: Any) -> Dependency:
        return self._listen("change", **kwargs)

    def click(self, **kwargs: Any) -> Dependency:
        return self._listen("click", **kwargs)

    @property
    def elem_id(self) -> str | None:
        return self.kwargs.get("elem_id")

    @property
    def value(self) -> Any:
        return self.kwargs.get("value")


class Column(Context):
    """gr.Column (gradio/layouts.py): keyword-only scale, min_width, variant, visible, elem_id, and
    BlockContext's elem_classes and render."""

    KWARGS = ("scale", "min_width", "variant", "visible", "elem_id", "elem_classes", "render")

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self.KWARGS)
        if unknown:
            raise TypeError(f"gradio 3.41.2 Column() got unexpected keyword argument(s) {sorted(unknown)}")
        super().__init__(**kwargs)


class Accordion(Context):
    """gr.Accordion (gradio/layouts.py): label, then keyword-only open, visible, elem_id and
    BlockContext's elem_classes and render."""

    KWARGS = ("open", "visible", "elem_id", "elem_classes", "render")

    def __init__(self, label: str, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(self.KWARGS)
        if unknown:
            raise TypeError(f"gradio 3.41.2 Accordion() got unexpected keyword argument(s) {sorted(unknown)}")
        super().__init__(label=label, **kwargs)


class TabItem(Context):
    """gr.TabItem (gradio/layouts.py Tab, Selectable): label, keyword-only id and elem_id; `.select`
    listens as a component's events do (gradio/events.py)."""

    def __init__(self, label: str, *, id: Any = None, elem_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(label=label, id=id, elem_id=elem_id, **kwargs)
        self.listeners: dict[str, list[dict]] = {}

    def select(self, **kwargs: Any) -> Dependency:
        return Component._listen(self, "select", **kwargs)


class Dependency(dict):
    """What a listener returns (gradio/events.py Dependency): `.then` adds a listener that runs after it."""

    def __init__(self, component: Component, listener: dict) -> None:
        super().__init__(listener)
        self.component = component

    def then(self, **kwargs: Any) -> Dependency:
        return self.component._listen("then", **kwargs)


def _gradio() -> types.ModuleType:
    gr = types.ModuleType("gradio")
    for kind in _GRADIO_KWARGS:
        setattr(gr, kind, type(kind, (Component,), {}))
    gr.Row = gr.Blocks = Context
    gr.Column, gr.Accordion, gr.TabItem = Column, Accordion, TabItem
    gr.update = lambda **kwargs: {"__type__": "update", **kwargs}  # gradio/blocks.py update()
    gr.components = types.SimpleNamespace(Component=Component)
    return gr


# --- modules/ui_components.py InputAccordion ------------------------------------------------------
def _input_accordion(gr: types.ModuleType) -> type:
    class InputAccordion(gr.Checkbox):
        """A hidden checkbox `<id>-checkbox` plus an accordion `<id>` that opens with it."""

        def __init__(self, value: Any, **kwargs: Any) -> None:
            self.accordion_id = kwargs.get("elem_id")
            super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
            self.accordion = Context(**{**kwargs, "elem_id": self.accordion_id, "open": value})

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

    return InputAccordion


# --- modules/infotext_utils.py PasteField -----------------------------------------------------------
class PasteField(tuple):
    """(component, target) with `api`, `label` (a str target) and `function` (a callable target)."""

    def __new__(cls, component: Any, target: Any, *, api: Any = None) -> PasteField:
        return super().__new__(cls, (component, target))

    def __init__(self, component: Any, target: Any, *, api: Any = None) -> None:
        super().__init__()
        self.api, self.component = api, component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


# --- modules/options.py OptionInfo and shared.opts ----------------------------------------------------
class OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, onchange=None, section=None,
                 refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False,
                 category_id=None):  # fmt: skip
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.section, self.comment_after, self.onchange = section, comment_after, onchange

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self


class Options:
    """shared.opts: values as attributes; add_option registers (and sets the default if unset)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__["data"] = dict(values)
        self.__dict__["data_labels"] = {}

    def add_option(self, key: str, info: OptionInfo) -> None:
        self.data_labels[key] = info
        self.data.setdefault(key, info.default)

    def __getattr__(self, key: str) -> Any:
        if key in self.data:
            return self.data[key]
        if key in self.data_labels:
            return self.data_labels[key].default
        raise AttributeError(key)

    def __setattr__(self, key: str, value: Any) -> None:
        self.data[key] = value

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """As modules/options.py Options.set (v1.10.1): store a changed value, then call its onchange
        (the Settings tab's Apply and POST /sdapi/v1/options both come through here)."""
        old = self.data.get(key, None)
        if old == value:
            return False
        option = self.data_labels[key]
        setattr(self, key, value)
        if run_callbacks and option.onchange is not None:
            try:
                option.onchange()
            except Exception:
                setattr(self, key, old)
                return False
        return True


# --- modules/images.py resize_image, flatten ------------------------------------------------------
def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: Any = None):
    """Modes 0 stretch, 1 centre crop to the aspect, 2 fit inside and stretch the edge rows or
    columns into the borders; LANCZOS, no upscaler (opts.upscaler_for_img2img is None)."""
    if resize_mode == 0:
        return im.resize((width, height), resample=Image.LANCZOS)
    ratio, src_ratio = width / height, im.width / im.height
    if resize_mode == 1:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
    else:
        src_w = width if ratio < src_ratio else im.width * height // im.height
        src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=Image.LANCZOS)
    result = Image.new("RGB", (width, height))
    left, top = width // 2 - src_w // 2, height // 2 - src_h // 2
    result.paste(resized, box=(left, top))
    if resize_mode == 2 and ratio < src_ratio and top > 0:  # bands above and below
        result.paste(resized.resize((width, top), box=(0, 0, width, 0)), box=(0, 0))
        result.paste(resized.resize((width, top), box=(0, src_h, width, src_h)), box=(0, top + src_h))
    elif resize_mode == 2 and ratio > src_ratio and left > 0:  # bands left and right
        result.paste(resized.resize((left, height), box=(0, 0, 0, height)), box=(0, 0))
        result.paste(resized.resize((left, height), box=(src_w, 0, src_w, height)), box=(left + src_w, 0))
    return result


def flatten(img: Image.Image, bgcolor: str) -> Image.Image:
    """RGBA composited onto `bgcolor`; everything returned as RGB."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def read(fp: Any, **kwargs: Any) -> Image.Image:
    """modules/images.py read: open, then the EXIF orientation (fix_image)."""
    return ImageOps.exif_transpose(Image.open(fp, **kwargs))


# --- modules/util.py walk_files (shared.walk_files) --------------------------------------------------
def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def walk_files(path: str, allowed_extensions: Any = None):
    """Files under `path`, folders and names in natural order, only the allowed extensions."""
    if not os.path.exists(path):
        return
    allowed = set(allowed_extensions) if allowed_extensions is not None else None
    for root, _, files in sorted(os.walk(path, followlinks=True), key=lambda item: _natural_key(item[0])):
        for filename in sorted(files, key=_natural_key):
            if allowed is not None and os.path.splitext(filename)[1].lower() not in allowed:
                continue
            if "/." in root or "\\." in root:  # opts.list_hidden_files is False by default
                continue
            yield os.path.join(root, filename)


# --- modules/masking.py ---------------------------------------------------------------------------
def get_crop_region_v2(mask: Any, pad: int = 0):
    """Bounding box of the non-zero mask, padded and clipped; None for an empty mask."""
    mask = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
    box = mask.getbbox()
    if not box:
        return None
    if not pad:
        return box
    x1, y1, x2, y2 = box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.size[0]), min(y2 + pad, mask.size[1])


def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):
    """Grow the short side of the region around its centre to the processing aspect, shifted to
    stay inside the image."""
    x1, y1, x2, y2 = crop_region
    wide = (x2 - x1) / (y2 - y1) > processing_width / processing_height

    def grow(low, high, wanted, limit):
        extra = int(wanted - (high - low))
        low, high = low - extra // 2, high + extra - extra // 2
        if high >= limit:
            low, high = low - (high - limit), limit
        if low < 0:
            low, high = 0, high - low
        return low, min(high, limit)

    if wide:
        y1, y2 = grow(y1, y2, (x2 - x1) / (processing_width / processing_height), image_height)
    else:
        x1, x2 = grow(x1, x2, (y2 - y1) * (processing_width / processing_height), image_width)
    return x1, y1, x2, y2


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Smear the unmasked colours into the masked area with ever smaller blurs."""
    result = Image.new("RGBA", image.size)
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


# --- modules/processing.py create_binary_mask ------------------------------------------------------
def create_binary_mask(image: Image.Image, round: bool = True) -> Image.Image:
    """A painted RGBA mask is its alpha (thresholded at 128 with `round`); anything else as L."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = image.split()[-1].convert("L")
        return alpha.point(lambda x: 255 if x > 128 else 0) if round else alpha
    return image.convert("L")


# --- modules/scripts.py, modules/script_callbacks.py -------------------------------------------------
class Script:
    """modules/scripts.py Script: the attributes the WebUI sets and reads on every script."""

    infotext_fields = None
    paste_field_names = None


ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])  # scripts.py


# --- scripts/xyz_grid.py (v1.10.1; Forge dfdcbab has the same AxisOption) ----------------------------
def _format_value_add_label(p: Any, opt: Any, x: Any) -> str:
    if type(x) is float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def _apply_field(name: str):
    def fun(p: Any, x: Any, xs: Any) -> None:
        setattr(p, name, x)

    return fun


class AxisOption:
    def __init__(self, label, type, apply, format_value=_format_value_add_label, confirm=None, cost=0.0,
                 choices=None, prepare=None):  # fmt: skip
        self.label, self.type, self.apply, self.format_value = label, type, apply, format_value
        self.confirm, self.cost, self.prepare, self.choices = confirm, cost, prepare, choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_img2img = False


def load_xyz_grid() -> types.ModuleType:
    """A fresh xyz_grid module, as modules/script_loading.py loads it (named by its file name, a new
    axis_options list each time), with the built-in axes an extension's must not disturb and
    `run_axis`: Script.run's process_axis and cell for one axis (values as the UI sends them:
    comma-separated text, or the dropdown's list for an axis with choices), then each cell's
    process_images on a copy of p."""
    xyz = types.ModuleType("xyz_grid.py")
    xyz.AxisOption, xyz.AxisOptionImg2Img, xyz.AxisOptionTxt2Img = AxisOption, AxisOptionImg2Img, AxisOptionTxt2Img
    xyz.axis_options = [
        AxisOption("Nothing", str, lambda p, x, xs: None, format_value=lambda p, opt, x: ""),
        AxisOption("Seed", int, _apply_field("seed")),
        AxisOptionTxt2Img("Hires steps", int, _apply_field("hr_second_pass_steps")),
        AxisOptionImg2Img("Image CFG Scale", float, _apply_field("image_cfg_scale")),
    ]

    class Script:
        def ui(self, is_img2img: bool) -> list:
            self.current_axis_options = [
                x for x in xyz.axis_options if type(x) is AxisOption or x.is_img2img == is_img2img
            ]
            return [x.label for x in self.current_axis_options]  # the X type dropdown's choices

    Script.__module__ = "xyz_grid.py"
    xyz.Script = Script

    def run_axis(p: Any, opt: AxisOption, values: Any, process_images: Any) -> list[tuple[str, Any]]:
        if opt.choices is not None:
            valslist = list(values)
        else:
            valslist = [v.strip() for v in next(csv.reader(io.StringIO(values), skipinitialspace=True))]
        valslist = [opt.type(x) for x in valslist]
        if opt.confirm:
            opt.confirm(p, valslist)
        cells = []
        for x in valslist:
            pc = copy(p)
            opt.apply(pc, x, valslist)
            cells.append((opt.format_value(p, opt, x), process_images(pc)))
        return cells

    xyz.run_axis = run_axis
    return xyz


@dataclass
class Callbacks:
    registered: dict[str, list] = field(default_factory=dict)

    def add(self, name: str):
        return lambda function: self.registered.setdefault(name, []).append(function)


@dataclass
class ImageSaveParams:  # modules/script_callbacks.py
    image: Image.Image
    p: Any
    filename: str
    pnginfo: dict


# --- modules/sd_models.py list_models, CheckpointInfo ------------------------------------------------
def _sd_models(
    checkpoints: dict | None, models_path: Any, cmd: types.SimpleNamespace, sd_model: Any
) -> types.ModuleType:
    """checkpoints_list (title -> CheckpointInfo), model_path (`<models_path>/Stable-diffusion`, as
    sd_models.py joins paths.models_path and its model_dir), and list_models, which empties the list
    and registers every .ckpt/.safetensors under model_path and --ckpt-dir (walked recursively,
    *.vae.* left out), as modules/sd_models.py list_models with modelloader.load_models does.
    `listed` counts its calls. model_data.sd_model: the loaded model, read without loading one."""
    import os

    sd_models = types.ModuleType("modules.sd_models")
    sd_models.checkpoints_list = dict(checkpoints or {})
    sd_models.model_path = os.path.join(str(models_path) if models_path else "models", "Stable-diffusion")
    sd_models.listed = 0
    sd_models.model_data = types.SimpleNamespace(sd_model=sd_model)  # SdModelData: read without loading

    def list_models() -> None:
        sd_models.listed += 1
        sd_models.checkpoints_list.clear()
        for folder in (sd_models.model_path, getattr(cmd, "ckpt_dir", None)):
            if not folder or not os.path.isdir(folder):
                continue
            for root, _, files in os.walk(folder, followlinks=True):
                for name in sorted(files):
                    if name.endswith((".vae.ckpt", ".vae.safetensors")) or not name.endswith((".ckpt", ".safetensors")):
                        continue
                    filename = os.path.join(root, name)
                    title = os.path.relpath(filename, folder)
                    sd_models.checkpoints_list[title] = types.SimpleNamespace(
                        filename=filename, name=title, title=title
                    )

    sd_models.list_models = list_models
    sd_models.select_checkpoint = lambda: next(iter(sd_models.checkpoints_list.values()), None)
    return sd_models


# --- modules/processing.py: the processing objects, as far as the glue reads them --------------------
@dataclass
class Img2Img:
    """StableDiffusionProcessingImg2Img: the fields the glue reads, with the class defaults
    (inpainting_fill 0 is "fill"); comment() as StableDiffusionProcessing has it."""

    sd_model: Any = None
    init_images: list = field(default_factory=list)
    width: int = 128
    height: int = 128
    resize_mode: int = 0
    image_mask: Any = None
    inpainting_fill: int = 0
    paste_to: tuple | None = None
    init_latent: Any = None
    is_api: bool = False
    extra_generation_params: dict = field(default_factory=dict)
    comments: dict = field(default_factory=dict)

    def comment(self, text: str) -> None:  # shown under the result (Processed.comments)
        self.comments[text] = 1


@dataclass
class Txt2Img:
    """StableDiffusionProcessingTxt2Img: no init_images."""

    sd_model: Any = None
    width: int = 128
    height: int = 96
    is_api: bool = False
    extra_generation_params: dict = field(default_factory=dict)


# --- the whole set -----------------------------------------------------------------------------------
@dataclass
class WebUI:
    """The faked modules of one test, with handles the test reads."""

    gradio: types.ModuleType
    modules: dict[str, types.ModuleType]
    callbacks: Callbacks
    opts: Options
    cmd_opts: types.SimpleNamespace

    @property
    def shared(self) -> types.ModuleType:
        return self.modules["modules.shared"]


def install(
    monkeypatch, *, sd_model: Any = None, checkpoints: dict | None = None, models_path: Any = None, **cmd_opts: Any
) -> WebUI:
    """Put gradio and the WebUI's modules into sys.modules for one test."""
    gr = _gradio()
    callbacks = Callbacks()
    opts = Options(img2img_background_color="#ffffff", img_max_size_mp=200)
    cmd = types.SimpleNamespace(**{"api": True, "nowebui": False, "api_auth": None, "lowvram": False,
                                   "medvram": False, "ckpt_dir": None, **cmd_opts})  # fmt: skip

    def module(name: str, **attributes: Any) -> types.ModuleType:
        created = types.ModuleType(name)
        created.__dict__.update(attributes)
        return created

    modules = {
        "modules.shared": module(
            "modules.shared",
            opts=opts,
            cmd_opts=cmd,
            OptionInfo=OptionInfo,
            sd_model=sd_model,
            device=torch.device("cpu"),
            walk_files=walk_files,
            # modules/shared_state.py State (v1.10.1): the fields a script reads and writes mid-job
            state=types.SimpleNamespace(
                textinfo=None,
                job="",
                job_no=0,
                job_count=0,
                sampling_step=0,
                sampling_steps=0,
                skipped=False,
                interrupted=False,
                stopping_generation=False,
            ),
        ),
        # modules/paths_internal.py: models_path is <data_path>/models without --models-dir
        "modules.paths": module(
            "modules.paths",
            models_path=str(models_path) if models_path else "models",
            data_path=os.path.dirname(str(models_path)) if models_path else ".",
            script_path=os.path.dirname(str(models_path)) if models_path else ".",
        ),
        "modules.devices": module("modules.devices", device=torch.device("cpu")),
        "modules.scripts": module(
            "modules.scripts", Script=Script, AlwaysVisible=object(), scripts_data=[], ScriptClassData=ScriptClassData
        ),
        "modules.script_callbacks": module(
            "modules.script_callbacks",
            **{
                f"on_{name}": callbacks.add(name)
                for name in ("script_unloaded", "image_saved", "ui_settings", "app_started", "before_ui")
            },  # fmt: skip
            ImageSaveParams=ImageSaveParams,
        ),
        "modules.ui_components": module("modules.ui_components", InputAccordion=_input_accordion(gr)),
        "modules.infotext_utils": module("modules.infotext_utils", PasteField=PasteField),
        "modules.images": module("modules.images", resize_image=resize_image, flatten=flatten, read=read),
        "modules.masking": module(
            "modules.masking", get_crop_region_v2=get_crop_region_v2, expand_crop_region=expand_crop_region, fill=fill
        ),
        "modules.processing": module("modules.processing", create_binary_mask=create_binary_mask),
        "modules.call_queue": module("modules.call_queue", queue_lock=threading.Lock()),
        "modules.sd_models": _sd_models(checkpoints, models_path, cmd, sd_model),
    }
    package = module("modules", **{name.split(".", 1)[1]: m for name, m in modules.items()})
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "modules", package)
    for name, created in modules.items():
        monkeypatch.setitem(sys.modules, name, created)
    monkeypatch.setitem(sys.modules, "gradio", gr)
    Component.created = []
    Context.opened = []
    return WebUI(gr, modules, callbacks, opts, cmd)


def import_script(name: str = "depth2img_script_under_test") -> types.ModuleType:
    """Execute scripts/depth2img.py as the WebUI's script loader does (modules/scripts.py
    load_scripts: a fresh module per load), against whatever fakes are installed."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "scripts" / "depth2img.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def add_xyz_grid(webui: WebUI) -> types.ModuleType:
    """What load_scripts does for scripts/xyz_grid.py: a fresh module, its Script in scripts_data."""
    xyz = load_xyz_grid()
    webui.modules["modules.scripts"].scripts_data.append(ScriptClassData(xyz.Script, "scripts/xyz_grid.py", ".", xyz))
    return xyz


def before_ui(webui: WebUI) -> None:
    """script_callbacks.before_ui_callback: every on_before_ui callback (webui.py, before create_ui)."""
    for callback in reversed(webui.callbacks.registered.get("before_ui", [])):
        callback()


def unload(webui: WebUI) -> None:
    """What Reload UI does first: the script_unloaded callbacks (our undo of the MiDaS patch)."""
    for undo in webui.callbacks.registered.get("script_unloaded", []):
        undo()


# --- modules/api/api.py (v1.10.1): the app the extension's routes are mounted on -------------------
def webui_app(api_auth: str | None = None) -> Any:
    """A FastAPI app as the WebUI's API leaves it for app_started callbacks: `api_middleware`'s
    exception handlers (every HTTPException answered as {error, detail, body, errors}), the GZip
    middleware of initialize_util.setup_middleware, and one route of its own added as
    `Api.add_api_route` adds them (`dependencies=[Depends(self.auth)]` with --api-auth) with a
    pydantic body like /sdapi/v1/png-info's PNGInfoRequest (modules/api/models.py), to show how the
    WebUI's own routes treat a body. `app.state.png_info_calls` counts that route's calls."""
    from secrets import compare_digest

    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPBasic, HTTPBasicCredentials
    from pydantic import BaseModel
    from starlette.middleware.gzip import GZipMiddleware

    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.state.png_info_calls = 0

    def handle_exception(request: Request, e: Exception) -> JSONResponse:
        err = {
            "error": type(e).__name__,
            "detail": vars(e).get("detail", ""),
            "body": vars(e).get("body", ""),
            "errors": str(e),
        }
        return JSONResponse(status_code=vars(e).get("status_code", 500), content=jsonable_encoder(err))

    @app.middleware("http")
    async def exception_handling(request: Request, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except Exception as e:
            return handle_exception(request, e)

    @app.exception_handler(Exception)
    async def fastapi_exception_handler(request: Request, e: Exception) -> JSONResponse:
        return handle_exception(request, e)

    @app.exception_handler(HTTPException)
    async def http_exception_handler(request: Request, e: HTTPException) -> JSONResponse:
        return handle_exception(request, e)

    credentials = {}
    for auth in (api_auth or "").split(","):
        if auth:
            user, password = auth.split(":")
            credentials[user] = password

    def auth(credentials_given: HTTPBasicCredentials = Depends(HTTPBasic())) -> bool:  # noqa: B008
        user = credentials_given.username
        if user in credentials and compare_digest(credentials_given.password, credentials[user]):
            return True
        raise HTTPException(
            status_code=401, detail="Incorrect username or password", headers={"WWW-Authenticate": "Basic"}
        )

    class PNGInfoRequest(BaseModel):
        image: str

    def pnginfoapi(req: PNGInfoRequest) -> dict:
        app.state.png_info_calls += 1
        return {"info": "", "items": {}}

    # this module's annotations are strings (from __future__); FastAPI needs the local classes themselves
    auth.__annotations__ = {"credentials_given": HTTPBasicCredentials, "return": bool}
    pnginfoapi.__annotations__ = {"req": PNGInfoRequest, "return": dict}

    def add_api_route(path: str, endpoint: Any, **kwargs: Any) -> None:
        if api_auth:
            app.add_api_route(path, endpoint, dependencies=[Depends(auth)], **kwargs)
        else:
            app.add_api_route(path, endpoint, **kwargs)

    add_api_route("/sdapi/v1/png-info", pnginfoapi, methods=["POST"])
    return app
