"""The command line under bad and odd input: never overwrite, never a traceback, one bad image
never stops the others, sizes said and checked, progress only on a terminal."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scenes import make_scene
from test_midas import depth_checkpoint  # noqa: F401  (fixture)

from lib_depth import DepthSettings, conditioning_to_previews, depth_to_conditioning, depth_to_tensor, load_depth_map
from lib_depth.cli.main import main
from lib_depth.cli.progress import Progress
from lib_depth.geometry import CROP_AND_RESIZE, JUST_RESIZE, RESIZE_AND_FILL, fit_depth

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lib_depth", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def depth_map(path: Path, width: int = 120, height: int = 80) -> Path:
    y, x = np.mgrid[0:height, 0:width]
    Image.fromarray((x * 400 + y * 100).astype(np.uint16)).save(path)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def test_preview_never_overwrites(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png")
    taken = tmp_path / "out.png"
    taken.write_bytes(b"user's file")
    assert main(["preview", str(source), "-o", str(taken)]) == 0
    out = capsys.readouterr().out
    assert taken.read_bytes() == b"user's file"
    assert f"{tmp_path / 'out-1.png'} (out.png exists; files are never overwritten)" in out
    assert Image.open(tmp_path / "out-1.png").size == (120, 80)


def test_preview_never_replaces_its_own_input(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png")
    before = source.read_bytes()
    assert main(["preview", str(source), "-o", str(source)]) == 0
    assert source.read_bytes() == before and Image.open(source).mode in ("I;16", "I")
    assert "(m.png is the input; files are never overwritten)" in capsys.readouterr().out
    link = tmp_path / "link.png"
    try:
        link.symlink_to(source)
    except OSError:
        return
    assert main(["preview", str(source), "-o", str(link)]) == 0
    assert source.read_bytes() == before and "link.png is the input" in capsys.readouterr().out


def test_preview_of_a_decompression_bomb_is_one_line(tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 40000, 40000)
    result = run_cli("preview", bomb, "-o", tmp_path / "o.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bomb.png: 1,600,000,000 pixels is over" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_huge_sizes_are_refused_before_any_work(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png")
    assert main(["preview", str(source), "-o", str(tmp_path / "o.png"), "--width", "100000", "--height", "100000"]) == 2
    assert "--width/--height: 100000x100000 (10,000,000,000 pixels) is over" in capsys.readouterr().err
    assert main(["preview", str(source), "-o", str(tmp_path / "o.png"), "--width", "100000"]) == 0  # 100000x80
    assert (
        main(["--max-megapixels", "1", "preview", str(source), "-o", str(tmp_path / "p.png"), "--width", "100000"]) == 2
    )
    assert "over the image size limit of 1,000,000 pixels" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "-8", "63", "12.5", "wide"])
def test_bad_sizes_are_rejected(tmp_path, size):
    result = run_cli("preview", depth_map(tmp_path / "m.png"), "-o", tmp_path / "o.png", "--width", size)
    assert result.returncode == 2 and "argument --width" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_sizes_not_a_multiple_of_8_are_said(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png", 800, 400)
    assert main(["preview", str(source), "-o", str(tmp_path / "o.png"), "--width", "777", "--height", "333"]) == 0
    out = capsys.readouterr().out
    assert "the depth a 776x328 generation gets" in out
    assert "777x333 is not a multiple of 8; a generation of that size makes 776x328 images" in out
    assert Image.open(tmp_path / "o.png").size == (776, 328)


@pytest.mark.parametrize(
    "mode, number",
    [("crop-and-resize", CROP_AND_RESIZE), ("just-resize", JUST_RESIZE), ("resize-and-fill", RESIZE_AND_FILL)],
)
def test_resize_mode_matches_the_generation(tmp_path, mode, number):
    source = depth_map(tmp_path / "m.png", 300, 100)  # 3:1 map for a 1:1 generation
    output = tmp_path / f"{mode}.png"
    assert (
        main(["preview", str(source), "-o", str(output), "--width", "256", "--height", "256", "--resize-mode", mode])
        == 0
    )
    fitted = fit_depth(load_depth_map(source), 256, 256, number)
    expected = conditioning_to_previews(
        depth_to_conditioning(depth_to_tensor(fitted), (32, 32), DepthSettings()), (256, 256)
    )[0]
    assert np.array_equal(np.asarray(Image.open(output)), np.asarray(expected))


def test_default_resize_mode_is_txt2img_centre_crop(tmp_path):
    source = depth_map(tmp_path / "m.png", 300, 100)
    assert main(["preview", str(source), "-o", str(tmp_path / "a.png"), "--width", "128", "--height", "128"]) == 0
    assert (
        main(
            [
                "preview",
                str(source),
                "-o",
                str(tmp_path / "b.png"),
                "--width",
                "128",
                "--height",
                "128",
                "--resize-mode",
                "crop-and-resize",
            ]
        )
        == 0
    )
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_exif_rotated_depth_map_preview_is_upright(tmp_path, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6
    ramp = np.tile(np.arange(160, dtype=np.uint8), (80, 1))  # not flat: a flat map has no depth to keep
    Image.fromarray(ramp).save(tmp_path / "phone.png", exif=exif)
    assert main(["preview", str(tmp_path / "phone.png"), "-o", str(tmp_path / "o.png")]) == 0
    assert Image.open(tmp_path / "o.png").size == (80, 160)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_never_runs_into_result_lines(capsys):
    terminal = Terminal()
    progress = Progress(terminal)
    progress.step("loading the depth model")
    progress.print("a.png -> a-depth.png")
    progress.step("estimating depth (2/2) b.png")
    progress.clear()
    shown = terminal.getvalue()
    assert "loading the depth model" in shown and shown.endswith("\r\x1b[K")
    assert capsys.readouterr().out == "a.png -> a-depth.png\n"
    log = io.StringIO()
    quiet = Progress(log)
    quiet.step("loading")
    quiet.clear()
    assert log.getvalue() == ""


def test_depth_processes_every_image_and_reports_each_failure(tmp_path, depth_checkpoint, capsys):  # noqa: F811
    make_scene(96, 64, 0).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_text("not an image")
    png_header(tmp_path / "bomb.png", 40000, 40000)
    make_scene(64, 80, 1).convert("RGB").save(tmp_path / "c.jpg")
    images = [tmp_path / name for name in ("a.png", "bad.png", "missing.png", "bomb.png", "c.jpg")]
    code = main(["depth", *map(str, images), "--checkpoint", str(depth_checkpoint), "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-depth.png", "c-depth.png"]
    assert out.splitlines() == [
        f"{tmp_path / 'a.png'} -> {tmp_path / 'out' / 'a-depth.png'}",
        f"{tmp_path / 'c.jpg'} -> {tmp_path / 'out' / 'c-depth.png'}",
    ]
    lines = err.splitlines()
    assert lines[0] == f"error: {tmp_path / 'missing.png'}: no such file or folder"
    assert lines[1].startswith(f"error: {tmp_path / 'bad.png'}: image: ") and "not a readable image" in lines[1]
    assert lines[2].startswith(f"error: {tmp_path / 'bomb.png'}: image bomb.png: 1,600,000,000 pixels is over")
    assert lines[3] == "3 of 5 item(s) failed" and len(lines) == 4


def test_depth_with_an_unusable_checkpoint_stops_before_any_image(tmp_path, capsys):
    make_scene(96, 64, 0).save(tmp_path / "a.png")
    (tmp_path / "page.safetensors").write_bytes(b"<!DOCTYPE html><html></html>")
    code = main(
        ["depth", str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "page.safetensors"), "-o", str(tmp_path)]
    )
    assert code == 2 and "this looks like a web page" in capsys.readouterr().err


def test_preview_output_must_be_a_png_name(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a user's photo")
    assert main(["preview", str(source), "-o", str(photo)]) == 2
    assert "photo.jpg must be a .png file name" in capsys.readouterr().err
    assert photo.read_bytes() == b"a user's photo" and not (tmp_path / "photo-1.jpg").exists()


def test_preview_onto_a_folder_name_takes_the_next_name(tmp_path, capsys):
    source = depth_map(tmp_path / "m.png")
    (tmp_path / "dir.png").mkdir()
    assert main(["preview", str(source), "-o", str(tmp_path / "dir.png")]) == 0
    assert "dir-1.png (dir.png exists; files are never overwritten)" in capsys.readouterr().out
    assert (tmp_path / "dir.png").is_dir() and (tmp_path / "dir-1.png").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_depth_shows_its_steps_on_a_terminal_and_keeps_stdout_clean(tmp_path, depth_checkpoint):  # noqa: F811
    """stderr on a pseudo-terminal: the status line names each slow step; stdout (a pipe, as in a
    log) gets only the result line."""
    import pty

    make_scene(96, 64, 0).save(tmp_path / "a.png")
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "lib_depth", "depth", str(tmp_path / "a.png"), "--checkpoint", str(depth_checkpoint)]
        + ["-o", str(tmp_path / "out")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    out = process.stdout.read().decode()
    assert process.wait(timeout=300) == 0
    os.close(master)
    text = shown.decode(errors="replace")
    for step in ("loading the depth model from", "estimating depth a.png", "writing a-depth.png"):
        assert step in text, text
    assert text.endswith("\r\x1b[K")  # the status line is erased at the end
    assert out == f"{tmp_path / 'a.png'} -> {tmp_path / 'out' / 'a-depth.png'}\n"


def test_the_limit_given_to_one_command_does_not_outlive_it(tmp_path, monkeypatch):
    import os

    from lib_depth.io.images import MAX_MEGAPIXELS_VARIABLE

    monkeypatch.delenv(MAX_MEGAPIXELS_VARIABLE, raising=False)
    source = depth_map(tmp_path / "m.png")
    main(["--max-megapixels", "1", "preview", str(source), "-o", str(tmp_path / "o.png")])
    assert MAX_MEGAPIXELS_VARIABLE not in os.environ
