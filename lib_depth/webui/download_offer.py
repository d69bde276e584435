"""The accordion's download offers: under the status line, the depth model (variant, Download,
Cancel and a progress bar); under the estimator choice, an estimator's missing weights.

The accordion follows a job with a gradio generator (the WebUI runs gradio's queue), at the WebUI's
own progress period, and draws the WebUI's own progress bar (style.css `.progressDiv .progress`,
javascript/progressbar.js). When a job finishes, the browser clicks the WebUI's checkpoint refresh
button so the dropdown shows the file. Nothing is downloaded until the user clicks.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..models.download_jobs import DownloadJob, current_job, local_state, start_job
from ..models.model_files import (
    DEFAULT_MODEL,
    DEFAULT_VARIANT,
    MODEL_FILES,
    ModelFile,
    estimator_file,
    format_bytes,
    hub_endpoint,
)
from .depth_model import estimator_folder, installed_estimators, is_depth_model, loaded_model, weights_missing
from .download_table import (
    TableError,
    checkpoint_folder,
    default_variant,
    entry_for_variant,
    refresh_checkpoints,
    refresh_number,
    snapshot,
    start,
    table,
    table_job,
)
from .ids import element_id
from .options import webui
from .redact import shown_path
from .status import installed_rows

# the WebUI's checkpoint dropdown refresh button (modules/ui_settings.py create_setting_component)
WEBUI_REFRESH_BUTTON = "refresh_sd_model_checkpoint"
WEBUI_REFRESH_DELAY_MS = 3000


def format_eta(seconds: float) -> str:
    """As the WebUI's progress bar writes it (javascript/progressbar.js formatTime)."""
    seconds = int(seconds)
    if seconds > 3600:
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if seconds > 60:
        return f"{seconds // 60:02d}:{seconds % 60:02d}"
    return f"{seconds}s"


def progress_bar(fraction: float | None, text: str) -> str:
    """The WebUI's progress bar markup (style.css .progressDiv/.progress), placed in the flow."""
    width = 0.0 if fraction is None else max(0.0, min(fraction, 1.0)) * 100
    background = "" if fraction else "background:transparent;"
    return (
        "<div class='progressDiv' style='position:relative;top:0;margin:0.5em 0'>"
        f"<div class='progress' style='width:{width:.1f}%;{background}'>{html.escape(text)}</div></div>"
    )


def progress_html(entry: ModelFile, folder: Path, state: dict[str, Any] | None, *, refresh: int = 0) -> str:
    """What the offer shows below its buttons for the selected file and its job (if any); `refresh`
    (not 0) asks the browser to refresh the checkpoint list, once per number."""
    status = state["status"] if state else "idle"
    parts: list[str] = []
    if status in ("running", "checking"):
        fraction = state.get("fraction")
        text = "Checking the part downloaded earlier" if status == "checking" else f"Downloading {entry.filename}"
        if fraction:
            text += f" {fraction * 100:.0f}%"
        if status == "running" and state.get("eta"):
            text += f" ETA: {format_eta(state['eta'])}"
        parts.append(progress_bar(fraction, text))
        done = f"{format_bytes(state['bytes'])} of {entry.size_text()}"
        speed = f", {format_bytes(state['speed'])}/s" if status == "running" and state.get("speed") else ""
        parts.append(f"<p>{html.escape(done + speed)}</p>")
    elif status == "done":
        parts.append(f"<p class='depth2img-ok'>{html.escape(state['message'])}.</p>")
        steps = [*state.get("notes", []), *state.get("next_steps", [])]
        parts.append("<ul>" + "".join(f"<li>{html.escape(step)}</li>" for step in steps) + "</ul>")
    elif status in ("failed", "cancelled"):
        css = "depth2img-warn" if status == "failed" else "depth2img-note"
        parts.append(f"<p class='{css}'>{html.escape(state['message'])}</p>")
    if status not in ("running", "checking", "done"):
        where = f"Into {shown_path(folder)}, from {urlsplit(hub_endpoint()).netloc}, verified by its SHA-256"
        parts.append(f"<p>{html.escape(where)}. Licence: {html.escape(entry.licence)}.</p>")
    return (
        f"<div class='depth2img-download-state' data-depth2img-status='{status}' "
        f"data-depth2img-refresh='{int(refresh)}'>{''.join(parts)}</div>"
    )


def button_label(entry: ModelFile, state: dict[str, Any]) -> str:
    """`state` from local_state."""
    if state["installed"]:
        return f"{entry.filename} is installed"
    if state["partial"]:
        return f"Resume the download ({format_bytes(state['partial'])} of {entry.size_text()} done)"
    return f"Download the depth model ({entry.size_text()})"


def depth_checkpoint_needed() -> bool:
    """No depth model loaded and no depth checkpoint in the WebUI's list."""
    if is_depth_model(loaded_model()):
        return False
    return not any(row.kind.startswith("SD 2 depth") for row in installed_rows())


def offer_view(variant: Any, *, refresh: int = 0, check_installed: bool = True) -> tuple[Any, ...]:
    """Updates for (offer, button, cancel, progress)."""
    import gradio as gr

    try:
        entries = table()
    except TableError as error:
        text = f"<p class='depth2img-warn'>{html.escape(str(error))}</p>"
        return gr.update(visible=True), gr.update(visible=False), gr.update(visible=False), text
    entry = entry_for_variant(variant, entries)
    job = table_job(entries, variant)
    state = snapshot(job) if job else None
    if job is not None and job.entry.name != entry.name:  # another variant is downloading: show that one
        entry = job.entry
    running = bool(job and job.running)
    visible = running or (state is not None and state["status"] == "done") or depth_checkpoint_needed()
    if not check_installed:  # while following a job: only the job decides
        visible = True
    folder = checkpoint_folder()
    local = local_state(entry, folder)
    return (
        gr.update(visible=visible),
        gr.update(
            value="Downloading…" if running else button_label(entry, local),
            interactive=not running and not local["installed"],
            visible=True,
        ),
        gr.update(visible=running),
        progress_html(entry, folder, state, refresh=refresh),
    )


def poll_interval() -> float:
    """The WebUI's progress period (Settings -> Live previews; progressbar.js polls at it)."""

    milliseconds = webui("live_preview_refresh_period", 1000) or 1000
    return min(max(float(milliseconds) / 1000.0, 0.02), 5.0)


def follow(job: DownloadJob, variant: Any) -> Iterator[tuple[Any, ...]]:
    """Yield the offer's view while the job runs, and once after; refresh the checkpoint list when
    it is done, so that the final view's `data-depth2img-refresh` lets the browser refresh too."""
    while job.running:
        yield offer_view(variant, check_installed=False)
        time.sleep(poll_interval())
    job.wait()
    refresh = 0
    if job.snapshot()["status"] == "done":
        refresh_checkpoints(job)
        refresh = refresh_number(job)
    yield offer_view(variant, refresh=refresh, check_installed=False)


def on_download(variant: Any) -> Iterator[tuple[Any, ...]]:
    """The Download button: start (or join) the selected variant's download and follow it."""
    try:
        entries = table()
    except TableError:
        yield offer_view(variant)
        return
    entry = entry_for_variant(variant, entries)
    running = table_job(entries)
    job = running if running is not None and running.running else start(entry)
    yield from follow(job, variant)


def on_status(variant: Any) -> Iterator[tuple[Any, ...]]:
    """The status line changed (the accordion opened, a refresh): show the offer where it is needed,
    and follow a download that runs already (started by the route or before a page reload)."""
    try:
        job = table_job(table())
    except TableError:
        job = None
    if job is not None and job.running:
        yield from follow(job, variant)
    else:
        yield offer_view(variant)


def on_cancel(variant: Any) -> tuple[Any, ...]:
    try:
        job = table_job(table(), variant)
    except TableError:
        job = None
    if job is not None:
        job.cancel()
        job.wait(10)
    return offer_view(variant, check_installed=False)


def refresh_js(tab: str) -> str:
    """After a follow: if it saw the download finish, click our status refresh (which then names the
    installed checkpoint) once per finished download, and, once per finished download for the page
    (both accordions follow a download), the WebUI's checkpoint refresh button. That one runs
    list_models() again, which empties and refills the list, so it comes a few seconds later than
    our status refresh, which reads the list that the server refreshed before the download was shown
    as done."""
    progress = element_id(tab, "download_progress")
    ours = element_id(tab, "refresh")
    return (
        "() => { const app = gradioApp(); "
        f"const done = app.querySelector('#{progress} [data-depth2img-refresh]'); "
        "const number = done ? done.dataset.depth2imgRefresh : '0'; "
        "const seen = window.depth2imgRefreshed = window.depth2imgRefreshed || {}; "
        f"if (number === '0' || seen['{tab} ' + number]) return []; "
        f"seen['{tab} ' + number] = true; "
        f"app.getElementById('{ours}')?.click(); "
        "if (!seen[number]) { seen[number] = true; "
        f"setTimeout(() => app.getElementById('{WEBUI_REFRESH_BUTTON}')?.click(), {WEBUI_REFRESH_DELAY_MS}); }} "
        "return []; }"
    )


def build_offer(tab: str, status: Any) -> None:
    """The offer under the status line: hidden until the status line shows that no depth
    checkpoint is installed (no start-up cost: the checkpoints are looked at when the accordion opens)."""
    import gradio as gr

    try:
        entries = table()
    except TableError:
        entries = tuple(entry for entry in MODEL_FILES if entry.model == DEFAULT_MODEL)
    choices, value = [entry.variant for entry in entries], default_variant(entries)
    label = button_label(entry_for_variant(value, entries), {"installed": False, "partial": 0})
    info = "; ".join(f"{entry.variant}: {entry.size_text()} {entry.description}" for entry in entries)
    if DEFAULT_VARIANT in choices:
        info += f"; {DEFAULT_VARIANT} gives the same results in the WebUI at half the size"
    with gr.Column(visible=False, elem_id=element_id(tab, "download"), elem_classes=["depth2img-download"]) as offer:
        variant = gr.Radio(
            choices,
            value=value,
            label="Depth model file",
            info=info,
            elem_id=element_id(tab, "download_variant"),
        )
        with gr.Row():
            button = gr.Button(label, variant="primary", elem_id=element_id(tab, "download_button"))
            cancel = gr.Button(
                "Cancel download", variant="stop", visible=False, elem_id=element_id(tab, "download_cancel")
            )
        progress = gr.HTML(elem_id=element_id(tab, "download_progress"))
    outputs = [offer, button, cancel, progress]
    status.change(fn=on_status, inputs=[variant], outputs=outputs, show_progress=False).then(
        fn=None, _js=refresh_js(tab)
    )
    variant.change(fn=offer_view, inputs=[variant], outputs=outputs, show_progress=False)
    button.click(fn=on_download, inputs=[variant], outputs=outputs, show_progress=False).then(
        fn=None, _js=refresh_js(tab)
    )
    cancel.click(fn=on_cancel, inputs=[variant], outputs=outputs, show_progress=False)


# -- estimator weights ----------------------------------------------------------------------------------
# Picking an estimator whose weights are missing shows what it needs (file, size, licence) and a
# button: nothing is downloaded until the user confirms with it (never at start-up).


def estimator_view(name: Any) -> tuple[Any, ...]:
    """Updates for (offer, button, progress) of the chosen estimator."""
    import gradio as gr

    if not isinstance(name, str) or installed_estimators().get(name, True):
        job = current_job(name) if isinstance(name, str) else None
        done = job is not None and job.snapshot()["status"] == "done"
        text = f"<p class='depth2img-ok'>{html.escape(snapshot(job)['message'])}.</p>" if done else ""
        return gr.update(visible=done), gr.update(visible=False), text
    try:
        entry = estimator_file(name)
    except ValueError:  # no published hash to verify a download with: the manual steps
        return gr.update(visible=True), gr.update(visible=False), f"<p>{html.escape(weights_missing(name))}</p>"
    job = current_job(name)
    state = snapshot(job) if job else None
    running = bool(job and job.running)
    local = local_state(entry, estimator_folder())
    label = (
        f"Resume the download ({format_bytes(local['partial'])} of {entry.size_text()} done)"
        if local["partial"]
        else f"Download {entry.filename} ({entry.size_text()})"
    )
    text = progress_html(entry, estimator_folder(), state)
    needs = f"<p>{html.escape(name)} needs its weights ({html.escape(entry.filename)}, {entry.size_text()}).</p>"
    return (
        gr.update(visible=True),
        gr.update(value="Downloading…" if running else label, interactive=not running, visible=True),
        needs + text,
    )


def on_estimator_download(name: Any) -> Iterator[tuple[Any, ...]]:
    """The confirm button: download the chosen estimator's weights into models/depth2img, following it."""
    try:
        entry = estimator_file(name)
    except ValueError:
        yield estimator_view(name)
        return
    try:
        estimator_folder().mkdir(parents=True, exist_ok=True)  # models/depth2img is ours to create
    except OSError as error:
        yield gr_text(f"depth2img: cannot create {shown_path(estimator_folder())}: {error.strerror or error}")
        return
    job = start_job(entry, estimator_folder())
    while job.running:
        yield estimator_view(name)
        time.sleep(poll_interval())
    job.wait()
    yield estimator_view(name)


def gr_text(message: str) -> tuple[Any, ...]:
    import gradio as gr

    return gr.update(visible=True), gr.update(visible=False), f"<p class='depth2img-warn'>{html.escape(message)}</p>"


def build_estimator_offer(tab: str, estimator: Any) -> None:
    """Under the estimator choice: what a chosen estimator without weights needs, and a button."""
    import gradio as gr

    with gr.Column(visible=False, elem_id=element_id(tab, "estimator_download")) as offer:
        progress = gr.HTML(elem_id=element_id(tab, "estimator_download_progress"))
        button = gr.Button("Download", variant="primary", elem_id=element_id(tab, "estimator_download_button"))
    outputs = [offer, button, progress]
    estimator.change(fn=estimator_view, inputs=[estimator], outputs=outputs, show_progress=False)
    button.click(fn=on_estimator_download, inputs=[estimator], outputs=outputs, show_progress=False)
