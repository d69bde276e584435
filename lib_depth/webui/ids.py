"""Element ids: ours (javascript/depth2img.js and style.css use them too) and the WebUI's own
inputs the preview reads."""

PREFIX = "depth2img"


def element_id(tab: str, name: str) -> str:
    """`depth2img_<tab>_<name>`, unique in the page (tab is txt2img or img2img)."""
    return f"{PREFIX}_{tab}_{name}"


# The WebUI's inputs the preview needs: elem_id (modules/ui.py, v1.10.1) -> (tab, name).
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
    "img2img_batch_input_dir": ("img2img", "batch_input_dir"),  # mirrored into the frames_folder field
}

# The img2img sub-tabs (modules/ui.py TabItems, the same ids in Forge): elem_id -> the index
# modules/img2img.py dispatches on. Selecting one changes what the preview and the generation read.
WEBUI_TABS = {
    "img2img_img2img_tab": 0,
    "img2img_img2img_sketch_tab": 1,
    "img2img_inpaint_tab": 2,
    "img2img_inpaint_sketch_tab": 3,
    "img2img_inpaint_upload_tab": 4,
    "img2img_batch_tab": 5,
}
