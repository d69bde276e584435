// sd-webui-depth2img: keep the Depth2img status line true to the loaded checkpoint.
// When the WebUI reports new options (a checkpoint was loaded), click each tab's hidden refresh
// button, which re-renders the line ("Depth model loaded: ..." or which depth checkpoints to pick).
(function() {
    var lastCheckpoint = null;

    onOptionsChanged(function() {
        var checkpoint = opts.sd_checkpoint_hash || opts.sd_model_checkpoint || "";
        if (checkpoint === lastCheckpoint) {
            return;
        }
        lastCheckpoint = checkpoint;
        ["txt2img", "img2img"].forEach(function(tab) {
            var button = gradioApp().getElementById("depth2img_" + tab + "_refresh");
            if (button) {
                button.click();
            }
        });
    });
})();

// The preview button's first input is a hidden number: fill in the img2img sub-tab on screen
// (img2img, sketch, inpaint, inpaint sketch, inpaint upload), as the Generate button does.
// (Gradio passes the outputs' values after the inputs, so the position is counted from the start.)
function depth2imgPreviewArgs() {
    var args = Array.from(arguments);
    args[0] = get_tab_index('mode_img2img');
    return args;
}
