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
