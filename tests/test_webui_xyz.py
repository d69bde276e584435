"""The X/Y/Z plot axes (lib_depth/webui/xyz.py) against the fakes of scripts/xyz_grid.py v1.10.1
(tests/webui_fakes.py): registration across Reload UI, labels and choices from the field table,
validation before any image, and cells whose infotext and conditioning follow their values."""

from __future__ import annotations

import re

import pytest
import torch
import webui_fakes
from scenes import make_scene
from test_script import LatentDepth2ImageDiffusion

from lib_depth import image_to_tensor
from lib_depth.fields import INFOTEXT_FIELDS
from lib_depth.settings import INFOTEXT_KEY, DepthSettings
from lib_depth.webui import xyz


def load(monkeypatch, sd_model=None):
    """Start-up as the WebUI does it: load the scripts (xyz_grid.py and ours), then before_ui."""
    fakes = webui_fakes.install(monkeypatch, sd_model=sd_model)
    grid = webui_fakes.add_xyz_grid(fakes)
    module = webui_fakes.import_script()
    webui_fakes.before_ui(fakes)
    return fakes, grid, module


def reload_ui(fakes):
    """Reload UI (modules/scripts.py load_scripts): callbacks and scripts_data cleared, every script
    file executed anew (xyz_grid.py with a fresh axis list), then before_ui again."""
    webui_fakes.unload(fakes)
    fakes.callbacks.registered.clear()
    fakes.modules["modules.scripts"].scripts_data.clear()
    grid = webui_fakes.add_xyz_grid(fakes)
    module = webui_fakes.import_script()
    webui_fakes.before_ui(fakes)
    return grid, module


def labels(grid, is_img2img):
    return [label for label in grid.Script().ui(is_img2img) if label.startswith(xyz.LABEL_PREFIX)]


def option(grid, label, is_img2img):
    return next(o for o in grid.axis_options if o.label == label and getattr(o, "is_img2img", is_img2img) == is_img2img)


def test_one_axis_per_infotext_setting_on_each_tab(monkeypatch):
    fakes, grid, _ = load(monkeypatch)
    expected = {f.name: xyz.LABEL_PREFIX + f.label for f in INFOTEXT_FIELDS}
    for is_img2img in (True, False):
        shown = labels(grid, is_img2img)
        assert len(shown) == len(set(shown))
        wanted = [label for name, label in expected.items() if is_img2img or name != "masked_area"]
        assert sorted(shown) == sorted(wanted)
    assert "[Depth2img] Gamma" in labels(grid, False)
    assert option(grid, "[Depth2img] Gamma", False).type is float
    assert option(grid, "[Depth2img] Depth resolution", False).type is int
    assert option(grid, "[Depth2img] Depth source", False).choices() == ["upload", "reference"]
    assert option(grid, "[Depth2img] Depth source", True).choices() == ["estimate", "upload"]
    assert option(grid, "[Depth2img] Invert", True).choices() == ["false", "true"]
    assert option(grid, "[Depth2img] Normalise", True).choices() == ["per image", "shared", "smoothed"]
    assert option(grid, "[Depth2img] Gamma", True).choices is None  # typed, with xyz_grid's ranges
    assert [o.label for o in grid.axis_options[:4]] == ["Nothing", "Seed", "Hires steps", "Image CFG Scale"]


def test_before_ui_again_and_reload_ui_keep_exactly_one_set(monkeypatch):
    fakes, grid, _ = load(monkeypatch)
    count = len(grid.axis_options)
    webui_fakes.before_ui(fakes)  # called again on the same module (a WebUI that keeps xyz_grid loaded)
    assert len(grid.axis_options) == count
    assert xyz.register_axes() == 0
    new_grid, _ = reload_ui(fakes)
    assert new_grid is not grid and len(new_grid.axis_options) == count
    assert labels(new_grid, True) == labels(grid, True)
    assert len(fakes.callbacks.registered["before_ui"]) == 1


def test_no_xyz_grid_adds_nothing(monkeypatch):
    fakes = webui_fakes.install(monkeypatch)
    webui_fakes.import_script()
    webui_fakes.before_ui(fakes)  # no error: the X/Y/Z plot may be missing (a WebUI without it)
    assert xyz.find_xyz_module() is None and xyz.axis_indices() == {}


def test_axis_indices_are_the_dropdown_positions(monkeypatch):
    _, grid, _ = load(monkeypatch)
    indices = xyz.axis_indices()
    for tab, is_img2img in (("txt2img", False), ("img2img", True)):
        choices = grid.Script().ui(is_img2img)
        assert indices[tab] and all(choices[n] == label for label, n in indices[tab].items())


@pytest.mark.parametrize(
    ("label", "values", "message"),
    [
        ("[Depth2img] Gamma", "0.8, 20", "[Depth2img] Gamma: gamma: 20 is outside 0.1..10"),
        ("[Depth2img] Blur", "-1", "[Depth2img] Blur: blur: -1 is outside 0..128"),
        ("[Depth2img] Depth resolution", "2000", "[Depth2img] Depth resolution: resolution: 2000 is outside 0..1024"),
        ("[Depth2img] Depth source", ["estimate"], "txt2img offers upload, reference, not 'estimate'"),
        ("[Depth2img] Normalise", ["sometimes"], "normalise: expected one of per image, shared, smoothed"),
    ],
)
def test_confirm_rejects_before_any_image_with_the_settings_message(monkeypatch, label, values, message):
    _, grid, _ = load(monkeypatch)
    made = []
    with pytest.raises(ValueError, match=re.escape(message)):
        grid.run_axis(webui_fakes.Txt2Img(), option(grid, label, False), values, made.append)
    assert made == []


def test_cells_carry_their_values_even_with_the_accordion_closed(monkeypatch, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    _, grid, module = load(monkeypatch, sd_model=model)
    script = module.Depth2ImgScript()
    image = make_scene(128, 128, 5)
    p = webui_fakes.Img2Img(model, [image], init_latent=torch.zeros(1, 4, 16, 16))

    def process_images(pc):  # the WebUI's order: scripts' process, then init builds the conditioning
        script.process(pc, False, "estimate")  # the accordion closed
        return pc.extra_generation_params.get(INFOTEXT_KEY), pc.depth2img_image_conditioning(image_to_tensor(image))

    cells = grid.run_axis(p, option(grid, "[Depth2img] Gamma", True), "0.8, 1.5", process_images)
    (legend_a, (info_a, cond_a)), (legend_b, (info_b, cond_b)) = cells
    assert (legend_a, legend_b) == ("[Depth2img] Gamma: 0.8", "[Depth2img] Gamma: 1.5")
    assert DepthSettings.from_infotext(info_a).gamma == 0.8 and DepthSettings.from_infotext(info_b).gamma == 1.5
    assert not torch.allclose(cond_a, cond_b)
    assert xyz.ATTRIBUTE not in vars(p) and INFOTEXT_KEY not in p.extra_generation_params  # p itself untouched


def test_an_axis_overrides_the_open_accordion_and_a_bad_combination_stops_the_cell(monkeypatch, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    _, grid, module = load(monkeypatch, sd_model=model)
    script = module.Depth2ImgScript()
    p = webui_fakes.Img2Img(model, [make_scene(128, 128, 6)], init_latent=torch.zeros(1, 4, 16, 16))

    def process_images(pc):
        script.process(pc, {"enabled": True, "invert": True, "far": 0.4})
        return pc

    near = option(grid, "[Depth2img] Near level", True)
    kept, clipped = grid.run_axis(p, near, "0.9, 0.3", process_images)
    assert DepthSettings.from_infotext(kept[1].extra_generation_params[INFOTEXT_KEY]) == DepthSettings(
        invert=True, far=0.4, near=0.9
    )
    with pytest.raises(Exception, match=r"far \(0.4\) must be below near \(0.3\)"):
        clipped[1].depth2img_image_conditioning(image_to_tensor(make_scene(128, 128, 6)))


def test_choice_and_bool_axes_apply(monkeypatch, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    _, grid, module = load(monkeypatch, sd_model=model)
    script = module.Depth2ImgScript()
    p = webui_fakes.Img2Img(model, [make_scene(128, 128, 7)], init_latent=torch.zeros(1, 4, 16, 16))

    def settings_of(pc):
        script.process(pc, False)
        return DepthSettings.from_infotext(pc.extra_generation_params[INFOTEXT_KEY])

    cells = grid.run_axis(p, option(grid, "[Depth2img] Invert", True), ["true", "false"], settings_of)
    assert [c[1].invert for c in cells] == [True, False] and cells[0][0] == "[Depth2img] Invert: true"
    cells = grid.run_axis(p, option(grid, "[Depth2img] Depth resolution", True), "0, 512", settings_of)
    assert [c[1].resolution for c in cells] == [0, 512]
    assert cells[0][0] == "[Depth2img] Depth resolution: auto (the estimator's size)"


def test_the_docs_page_lists_the_axes():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "xyz-plot.md").read_text(encoding="utf-8")
    assert xyz.axes_table() in page


def test_the_status_route_gives_each_axis_index_by_label(monkeypatch):
    from lib_depth.webui import api

    fakes, grid, _ = load(monkeypatch)
    answer = api.status()
    assert answer["xyz_axes"] == xyz.axis_indices()
    assert grid.Script().ui(False)[answer["xyz_axes"]["txt2img"]["[Depth2img] Gamma"]] == "[Depth2img] Gamma"
