"""The accordion as the WebUI builds it (tests/webui_fakes.py: gradio 3.41.2, v1.10.1): which
controls show where, the preview that says when it is out of date, the element ids."""

from __future__ import annotations

import pytest
import torch
import webui_fakes
from scenes import make_scene
from test_script import LatentDepth2ImageDiffusion

from lib_depth.fields import AUTO_RESOLUTION, BY_NAME, FIELDS
from lib_depth.webui.ids import WEBUI_TABS

WEBUI_INPUTS = ("img2img_width", "img2img_height", "txt2img_width", "txt2img_height", "img2img_image")


@pytest.fixture
def build(monkeypatch):
    """build(is_img2img, sd_model=None) -> (script, accordion args, {elem_id: block or component}):
    the WebUI's inputs and img2img sub-tabs made first (after_component sees each), then ui()."""
    made = []

    def build_ui(is_img2img, sd_model=None):
        fakes = webui_fakes.install(monkeypatch, sd_model=sd_model)
        made.append(fakes)
        module = webui_fakes.import_script()
        script = module.Depth2ImgScript()
        gr = fakes.gradio
        for elem_id in WEBUI_INPUTS:
            script.after_component(gr.Number(512, elem_id=elem_id), elem_id=elem_id)
        for elem_id in WEBUI_TABS:
            script.after_component(gr.TabItem(elem_id, elem_id=elem_id), elem_id=elem_id)
        ours_from = len(webui_fakes.Component.created), len(webui_fakes.Context.opened)
        args = script.ui(is_img2img)
        ours = webui_fakes.Component.created[ours_from[0] :] + webui_fakes.Context.opened[ours_from[1] :]
        return script, args, {x.elem_id: x for x in ours if x.elem_id}, ours

    yield build_ui
    for fakes in made:
        webui_fakes.unload(fakes)


def visible(block):
    return block.kwargs.get("visible", True)


def fire(component, event, *values):
    """Every `event` listener of the component, called with `values` for its inputs (an empty note
    where none is given): {output elem_id: result}."""
    results = {}
    for listener in component.listeners.get(event, []):
        inputs = listener.get("inputs") or []
        out = listener["fn"](*(list(values) + [""] * len(inputs))[: len(inputs)])  # as gradio: one per input
        outs = listener["outputs"] if isinstance(listener["outputs"], list) else [listener["outputs"]]
        out = out if isinstance(out, (list, tuple)) and len(outs) > 1 else [out]
        results.update({o.elem_id: r for o, r in zip(outs, out, strict=True)})
    return results


@pytest.mark.parametrize("is_img2img", [True, False])
def test_every_element_we_create_has_a_unique_depth2img_id(build, is_img2img):
    tab = "img2img" if is_img2img else "txt2img"
    _, _, by_id, ours = build(is_img2img)
    components = [x for x in ours if isinstance(x, webui_fakes.Component)]
    ids = [c.elem_id for c in components]
    assert all(i and i.startswith(f"depth2img_{tab}_") for i in ids), [i for i in ids if not i]
    assert len(ids) == len(set(ids))
    blocks = [x.elem_id for x in ours if not isinstance(x, webui_fakes.Component) and x.elem_id]
    assert all(i.startswith(f"depth2img_{tab}_") for i in blocks) and len(blocks) == len(set(blocks))
    assert f"depth2img_{tab}_status" in by_id  # the status line, in the ids.py pattern again


def test_img2img_shows_the_estimator_the_sequences_and_hides_the_batch_row(build):
    _, args, by_id, _ = build(True)
    estimation, batch = by_id["depth2img_img2img_estimation"], by_id["depth2img_img2img_batch"]
    assert visible(estimation) and not visible(batch)
    assert not visible(by_id["depth2img_img2img_image"])  # source estimate: no upload
    assert not visible(by_id["depth2img_img2img_percentile"]) and not visible(by_id["depth2img_img2img_time_constant"])
    assert not visible(by_id["depth2img_img2img_preview"])  # no empty box before the first preview
    estimator, resolution = by_id["depth2img_img2img_estimator"], by_id["depth2img_img2img_resolution"]
    assert type(estimator).__name__ == "Dropdown" and estimator.kwargs["choices"] == list(BY_NAME["estimator"].choices)
    assert type(resolution).__name__ == "Dropdown" and resolution.value == AUTO_RESOLUTION
    assert (
        resolution.kwargs["choices"][:3] == [AUTO_RESOLUTION, "384", "512"] and resolution.kwargs["allow_custom_value"]
    )
    sequences = by_id["depth2img_img2img_sequences"]
    assert sequences.kwargs["label"] == "Sequences" and sequences.kwargs["open"] is False
    assert len(args) == len(FIELDS)


def test_source_decides_the_upload_and_the_estimator(build):
    _, _, by_id, _ = build(True)
    source = by_id["depth2img_img2img_source"]
    updates = fire(source, "change", "upload")
    assert updates["depth2img_img2img_image"]["visible"] is True
    assert updates["depth2img_img2img_estimation"]["visible"] is False  # a map is uploaded: nothing estimated
    updates = fire(source, "change", "estimate")
    assert updates["depth2img_img2img_image"]["visible"] is False
    assert updates["depth2img_img2img_estimation"]["visible"] is True


def test_txt2img_estimator_only_for_a_reference_photo(build):
    _, _, by_id, _ = build(False)
    assert not visible(by_id["depth2img_txt2img_estimation"])  # source upload by default
    assert visible(by_id["depth2img_txt2img_image"])
    updates = fire(by_id["depth2img_txt2img_source"], "change", "reference")
    assert updates["depth2img_txt2img_estimation"]["visible"] is True and updates["depth2img_txt2img_image"]["visible"]
    for name in ("depth_folder", "missing_map", "masked_area"):  # img2img's only
        assert not visible(by_id[f"depth2img_txt2img_{name}"])
    assert "depth2img_txt2img_batch" not in by_id


@pytest.mark.parametrize(
    ("mode", "percentile", "smoothing"),
    [("per image", False, False), ("shared", True, False), ("smoothed", True, True)],
)
def test_sequence_controls_only_for_the_modes_they_act_on(build, mode, percentile, smoothing):
    _, _, by_id, _ = build(True)
    updates = fire(by_id["depth2img_img2img_normalise"], "change", mode)
    assert updates["depth2img_img2img_percentile"]["visible"] is percentile
    assert updates["depth2img_img2img_time_constant"]["visible"] is smoothing


def test_batch_row_follows_the_img2img_sub_tab(build):
    script, _, _, _ = build(True)
    for elem_id, index in WEBUI_TABS.items():
        updates = fire(script.components[elem_id], "select")
        assert updates["depth2img_img2img_batch"]["visible"] is (index == 5)


def test_resolution_in_words_reaches_the_settings(build, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    script, args, _, _ = build(True, sd_model=model)
    values = [a.value for a in args]
    p = webui_fakes.Img2Img(model, [make_scene(128, 128, 1)], init_latent=torch.zeros(1, 4, 16, 16))
    values[0] = True
    script.process(p, *values)  # the UI's own values: resolution "auto (the estimator's size)"
    assert p.depth2img.settings.resolution == 0
    values[[f.name for f in FIELDS].index("resolution")] = "512"  # typed into the dropdown
    script.process(p, *values)
    assert p.depth2img.settings.resolution == 512


def preview_inputs(by_id, image):
    button = by_id["depth2img_img2img_preview_button"]
    listener = button.listeners["click"][0]
    values = {c: c.value for c in listener["inputs"]}
    values[listener["inputs"][0]] = 0
    for component in listener["inputs"]:
        if component.elem_id == "img2img_image":
            values[component] = image
        if component.elem_id in ("img2img_width", "img2img_height"):
            values[component] = 128
    return listener, values


def test_the_preview_says_when_it_is_out_of_date(build, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    script, _, by_id, _ = build(True, sd_model=model)
    width = script.components["img2img_width"]
    assert fire(width, "change", "")["depth2img_img2img_preview_note"] == {"__type__": "update"}  # nothing to mark
    listener, values = preview_inputs(by_id, make_scene(160, 120, 2))
    shown, note = listener["fn"](*values.values())
    assert shown["visible"] and "Depth for 128x128" in note and "out of date" not in note
    stale = fire(width, "change", note)["depth2img_img2img_preview_note"]
    assert "The preview is out of date: the size changed since it was made" in stale
    assert fire(width, "change", stale)["depth2img_img2img_preview_note"] == {"__type__": "update"}  # stays
    for elem_id, what in (
        ("depth2img_img2img_gamma", "the gamma"),
        ("depth2img_img2img_estimator", "the depth estimator"),
        ("img2img_image", "the image"),
    ):
        component = by_id.get(elem_id) or script.components[elem_id]
        assert f"out of date: {what} changed" in fire(component, "change", note)["depth2img_img2img_preview_note"]
    sub_tab = script.components["img2img_inpaint_tab"]
    assert "the img2img sub-tab changed" in fire(sub_tab, "select", note)["depth2img_img2img_preview_note"]
    shown, again = listener["fn"](*values.values())  # the next preview is fresh again
    assert "out of date" not in again and shown["visible"]


def test_a_sub_tab_without_an_image_shows_no_depth(build, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    _, _, by_id, _ = build(True, sd_model=model)
    listener, values = preview_inputs(by_id, make_scene(160, 120, 2))
    values[listener["inputs"][0]] = 2  # the inpaint sub-tab: nothing uploaded there
    shown, note = listener["fn"](*values.values())
    assert shown == {"__type__": "update", "value": None, "visible": False}
    assert "No depth to show: this img2img sub-tab has no image" in note


def test_a_generation_after_the_preview_does_not_estimate_again(build, dpt_head):
    from lib_depth import image_to_tensor
    from lib_depth.webui.depth_model import CACHE

    model = LatentDepth2ImageDiffusion(dpt_head)
    script, args, by_id, _ = build(True, sd_model=model)
    image = make_scene(128, 128, 3)
    listener, values = preview_inputs(by_id, image)
    listener["fn"](*values.values())
    misses = CACHE.stats().misses
    p = webui_fakes.Img2Img(model, [image], init_latent=torch.zeros(1, 4, 16, 16))
    script.process(p, *[True, *(a.value for a in args[1:])])
    p.depth2img_image_conditioning(image_to_tensor(image))
    assert CACHE.stats().misses == misses
