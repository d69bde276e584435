"""Depth maps from 3D tools and depth cameras: every file format, both depth kinds, against the
exact normalised 1/Z of an analytic scene; and every broken file is one clear line."""

from __future__ import annotations

import base64
import io
import warnings

import exr_writer
import numpy as np
import pytest
import torch
from PIL import Image
from scenes import distance_scene

from lib_depth.cli.main import main
from lib_depth.conditioning import depth_to_conditioning
from lib_depth.geometry import Geometry
from lib_depth.io.depth_files import DepthMap, read_depth_file
from lib_depth.io.depthmap import conditioning_to_previews, read_user_depth
from lib_depth.io.pairing import load_paired_map, pair_depth_maps
from lib_depth.run import DepthInputError, DepthRun
from lib_depth.settings import DepthSettings
from lib_depth.webui.args import parse_script_args
from lib_depth.webui.payload import PayloadError

WIDTH, HEIGHT = 320, 256
GEOMETRY = Geometry.for_size(WIDTH, HEIGHT)
DISTANCE = DepthSettings(source="upload", depth_kind="distance")
RELATIVE = DepthSettings(source="upload")


def write_exr(path, channels: dict, compression: str = "ZIP") -> None:
    """NONE and ZIP by the tests' own writer; the other codecs by the openexr package, where installed."""
    if compression in ("NONE", "ZIP"):
        path.write_bytes(exr_writer.exr_bytes(channels, compression))
        return
    openexr = pytest.importorskip("OpenEXR")
    header = {"compression": getattr(openexr, f"{compression}_COMPRESSION"), "type": openexr.scanlineimage}
    with openexr.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}) as file:
        file.write(str(path))


def test_the_tests_exr_writer_agrees_with_the_openexr_library(tmp_path, scene):
    openexr = pytest.importorskip("OpenEXR")
    channels = {"R": scene.astype(np.float16), "Z": scene.astype(np.float32)}
    for compression in ("NONE", "ZIP"):
        write_exr(tmp_path / "ours.exr", channels, compression)
        with openexr.File(str(tmp_path / "ours.exr"), separate_channels=True) as file:
            read = file.channels()
            assert np.array_equal(read["Z"].pixels, channels["Z"]) and np.array_equal(read["R"].pixels, channels["R"])


def reference(distance: np.ndarray) -> torch.Tensor:
    """The exact conditioning: 1/Z in float64 (no depth -> the farthest), normalised by the pipeline."""
    valid = np.isfinite(distance) & (distance > 0)
    inverse = 1.0 / np.where(valid, distance, distance[valid].max())
    return depth_to_conditioning(torch.from_numpy(inverse.astype(np.float32))[None, None], GEOMETRY.latent)


def conditioning_of(source, settings=DISTANCE) -> tuple[torch.Tensor, DepthRun]:
    run = DepthRun(settings, None, source)
    return run.conditioning(GEOMETRY), run


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return distance_scene(WIDTH, HEIGHT)  # sky = inf


def save_tiff_float(path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.float32), mode="F").save(path, format="TIFF")


def save_uint16(path, values: np.ndarray, fmt: str) -> None:
    Image.fromarray(values.astype(np.uint16)).save(path, format=fmt)


@pytest.mark.parametrize("compression", ["NONE", "RLE", "ZIPS", "ZIP", "PIZ"])
def test_float_exr_distance_gives_the_exact_inverse_depth(tmp_path, scene, compression):
    path = tmp_path / "z.exr"
    write_exr(path, {"Z": scene.astype(np.float32)}, compression)
    got, run = conditioning_of(read_depth_file(path))
    assert torch.isfinite(got).all()
    assert (got - reference(scene)).abs().max() < 1e-4
    assert f"OpenEXR {compression}, float, channel Z" in run.notes[0]
    assert f"{np.isinf(scene).sum():,} of {scene.size:,} pixels had no depth" in run.notes[0]


def test_half_exr_is_within_half_precision(tmp_path, scene):
    path = tmp_path / "z.exr"
    write_exr(path, {"R": np.zeros_like(scene, np.float16), "Z": scene.astype(np.float16)})
    got, run = conditioning_of(read_depth_file(path))
    # half keeps 11 significant bits: 1/Z is off by up to 2^-11 relative, a few 1e-4 of the [-1, 1] range
    assert (got - reference(scene)).abs().max() < 2e-3
    assert (got - reference(scene.astype(np.float16).astype(np.float64))).abs().max() < 1e-4
    assert "half, channel Z of R, Z" in run.notes[0]


@pytest.mark.parametrize(
    ("channels", "used"),
    [({"Y": 1}, "channel Y"), ({"R": 1, "G": 0, "B": 0}, "channel R of B, G, R"), ({"A": 0, "depth.Z": 1}, "depth.Z")],
)
def test_multi_channel_exr_uses_z_y_or_r_and_says_which(tmp_path, scene, channels, used):
    path = tmp_path / "multi.exr"
    write_exr(
        path, {name: (scene if keep else np.ones_like(scene)).astype(np.float32) for name, keep in channels.items()}
    )
    depth_map = read_depth_file(path)
    assert used in depth_map.description
    got, _ = conditioning_of(depth_map)
    assert (got - reference(scene)).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["tiff-float", "npy-float32", "npy-float64", "npy-fortran"])
def test_float_files_distance(tmp_path, scene, kind):
    path = tmp_path / "map.bin"  # the bytes decide the format, not the name
    sky_zero = np.where(np.isinf(scene), 0.0, scene)  # TIFF and .npy from other tools mark sky with 0
    if kind == "tiff-float":
        save_tiff_float(path, sky_zero)
    else:
        array = sky_zero.astype(np.float64 if kind == "npy-float64" else np.float32)
        with open(path, "wb") as file:
            np.save(file, np.asfortranarray(array) if kind == "npy-fortran" else array)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable array" warning from torch on the way
        got, _ = conditioning_of(read_depth_file(path))
    assert (got - reference(scene)).abs().max() < 1e-4


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_depth_camera_millimetres_in_16_bits(tmp_path, scene, fmt):
    millimetres = np.round(np.where(np.isinf(scene), 0, scene * 1000.0))  # 0 = no reading
    path = tmp_path / f"camera.{fmt.lower()}"
    save_uint16(path, millimetres, fmt)
    got, run = conditioning_of(read_depth_file(path))
    quantised = np.where(millimetres == 0, np.inf, millimetres)
    assert (got - reference(quantised)).abs().max() < 1e-4
    assert (got - reference(scene)).abs().max() < 2e-3  # half a millimetre at 3.7 m and more
    assert "16-bit grey" in run.notes[0]


def test_relative_kind_of_the_same_inverse_depth_agrees(tmp_path, scene):
    inverse = 1.0 / np.where(np.isinf(scene), scene[np.isfinite(scene)].max(), scene)
    path = tmp_path / "inverse.exr"
    write_exr(path, {"Y": inverse.astype(np.float32)})
    got, _ = conditioning_of(read_depth_file(path), RELATIVE)
    assert (got - reference(scene)).abs().max() < 1e-4
    fed_wrong, _ = conditioning_of(read_depth_file(tmp_path / "inverse.exr"), DISTANCE)  # 1/(1/Z) = Z: inverted
    assert np.corrcoef(fed_wrong.flatten(), reference(scene).flatten())[0, 1] < -0.5


@pytest.mark.parametrize("hole", [0.0, -3.0, np.nan, np.inf, -np.inf])
def test_pixels_without_depth_become_the_farthest_and_never_nan(hole, scene):
    values = np.where(np.isinf(scene), hole, scene)
    values[:8, :8] = hole
    depth = read_user_depth(values.astype(np.float32), "distance")
    assert np.isfinite(depth.values).all()
    assert depth.values[0, 0] == pytest.approx(1 / 12.0)
    assert depth.filled == int(np.isinf(scene).sum() + (np.isfinite(scene[:8, :8])).sum())
    got, _ = conditioning_of(DepthMap(values, "test"))
    assert torch.isfinite(got).all() and (got - reference(scene)).abs()[..., 1:, 1:].max() < 0.05


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros((64, 64)), "no pixel holds a distance"),
        (np.full((64, 64), np.nan), "no pixel holds a distance"),
        (np.where(np.eye(64) > 0, 0.0, 5.0), "every valid pixel holds the same distance"),
    ],
)
def test_maps_without_depth_are_one_clear_message(values, message):
    with pytest.raises(DepthInputError, match=f"depth2img: depth map: {message}"):
        conditioning_of(DepthMap(values.astype(np.float32), "test"))


def test_relative_map_with_nan_suggests_distance():
    with pytest.raises(DepthInputError, match="NaN or infinite; if the map holds distances .* depth_kind distance"):
        conditioning_of(DepthMap(np.where(np.eye(64) > 0, np.nan, 1.0), "test"), RELATIVE)


def exr_bytes(tmp_path, scene, compression="ZIP") -> bytes:
    write_exr(tmp_path / "good.exr", {"Z": scene.astype(np.float32)}, compression)
    return (tmp_path / "good.exr").read_bytes()


def test_every_truncation_of_an_exr_is_one_clear_line(tmp_path, scene):
    data = exr_bytes(tmp_path, scene)
    for cut in sorted({0, 1, 4, 8, 20, 100, 300, 360, 400, len(data) // 2, len(data) - 1}):
        (tmp_path / "cut.exr").write_bytes(data[:cut])
        with pytest.raises(
            ValueError, match=r"^depth map cut\.exr: (the file is empty|truncated|.*cut\.exr is not a readable image)"
        ):
            read_depth_file(tmp_path / "cut.exr")


def test_damaged_exr_bytes_never_raise_anything_but_a_clear_value_error(tmp_path, scene):
    data = bytearray(exr_bytes(tmp_path, scene))
    rng = np.random.default_rng(1)
    for _ in range(60):
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), 4):
            damaged[position] = rng.integers(0, 256)
        try:
            values = read_depth_file(bytes(damaged), "upload.exr").values
        except ValueError as error:
            assert str(error).startswith("upload.exr: ") and "\n" not in str(error)
        else:
            assert values.shape == scene.shape


def test_huge_files_are_refused_from_the_header(tmp_path, scene):
    data = bytearray(exr_bytes(tmp_path, scene))
    window = data.index(b"dataWindow\x00box2i\x00") + len(b"dataWindow\x00box2i\x00") + 4
    data[window : window + 16] = np.array([0, 0, 99_999, 99_999], "<i4").tobytes()  # 10^10 pixels
    with pytest.raises(ValueError, match=r"huge.exr: 100000x100000 .* is over .* limit of"):
        read_depth_file(bytes(data), "huge.exr")
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    npy = b"\x93NUMPY\x01\x00" + len(header.ljust(118) + b"\n").to_bytes(2, "little") + header.ljust(118) + b"\n"
    with pytest.raises(ValueError, match=r"huge.npy: 100000x100000 .* is over .* limit of"):
        read_depth_file(npy, "huge.npy")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((64, 64, 3), np.float32), r"a .npy array of shape \(64, 64, 3\); a depth map is 2-D"),
        (np.zeros((0, 64), np.float32), "an empty .npy array"),
        (np.array([["a"] * 64] * 64), "a .npy array of <U1; a depth map holds integers or floats"),
    ],
)
def test_bad_npy_files(tmp_path, array, message):
    buffer = io.BytesIO()
    np.save(buffer, array)
    with pytest.raises(ValueError, match=f"map.npy: {message}"):
        read_depth_file(buffer.getvalue(), "map.npy")


def test_truncated_npy(scene):
    buffer = io.BytesIO()
    np.save(buffer, scene.astype(np.float32))
    with pytest.raises(ValueError, match=r"map.npy: a truncated .npy file \(327,679 of 327,680 bytes"):
        read_depth_file(buffer.getvalue()[:-1], "map.npy")


def test_api_takes_a_base64_exr_and_refuses_a_bad_one_with_422_text(tmp_path, scene):
    encoded = base64.b64encode(exr_bytes(tmp_path, scene)).decode()
    request = parse_script_args([{"source": "upload", "depth_kind": "distance", "image": encoded}], is_api=True)
    assert isinstance(request.image, DepthMap) and request.settings.depth_kind == "distance"
    assert request.settings.to_infotext() == "source=upload; depth_kind=distance"
    assert DepthSettings.from_infotext("source=upload; depth_kind=distance") == request.settings
    broken = base64.b64encode(exr_bytes(tmp_path, scene)[:500]).decode()
    with pytest.raises(PayloadError, match="depth2img image: truncated"):
        parse_script_args([{"source": "upload", "depth_kind": "distance", "image": broken}], is_api=True)
    uploaded = parse_script_args([{"source": "upload", "image": exr_bytes(tmp_path, scene)}])  # the accordion's file
    assert isinstance(uploaded.image, DepthMap)


def test_reference_source_refuses_a_depth_file(tmp_path, scene):
    run = DepthRun(DepthSettings(source="reference"), None, read_depth_file(exr_bytes(tmp_path, scene)))
    with pytest.raises(DepthInputError, match="is a depth map, not a photo"):
        run.conditioning(GEOMETRY)


def test_cli_preview_of_an_exr_and_a_clear_error_for_a_bad_one(tmp_path, scene, capsys):
    (tmp_path / "z.exr").write_bytes(exr_bytes(tmp_path, scene))
    assert main(["preview", str(tmp_path / "z.exr"), "-o", str(tmp_path / "p.png"), "--depth-kind", "distance"]) == 0
    assert "pixels had no depth" in capsys.readouterr().out
    preview = np.asarray(Image.open(tmp_path / "p.png"), dtype=np.float64)
    expected = np.asarray(conditioning_to_previews(reference(scene), (HEIGHT, WIDTH))[0], dtype=np.float64)
    assert np.abs(preview - expected).max() <= 1  # the upsampled preview of the exact conditioning
    (tmp_path / "bad.exr").write_bytes(b"v/1\x01\x02\x00\x00\x00chan")
    assert main(["preview", str(tmp_path / "bad.exr"), "-o", str(tmp_path / "q.png"), "--depth-kind", "distance"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {tmp_path / 'bad.exr'}: truncated or damaged OpenEXR header") and err.count("\n") == 1
    )
    assert not (tmp_path / "q.png").exists()


def test_cli_depth_converts_distance_maps_and_goes_on_after_a_bad_one(tmp_path, scene, capsys):
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "a.exr").write_bytes(exr_bytes(tmp_path, scene))
    np.save(maps / "b.npy", np.zeros((64, 64), np.float32))  # no valid distance
    save_tiff_float(maps / "c.tif", np.where(np.isinf(scene), 0, scene))
    assert main(["depth", str(maps), "-o", str(tmp_path / "out"), "--depth-kind", "distance"]) == 1
    captured = capsys.readouterr()
    assert f"error: {maps / 'b.npy'}: no pixel holds a distance" in captured.err
    for name in ("a", "c"):
        written = np.asarray(Image.open(tmp_path / "out" / f"{name}-depth.png"), dtype=np.float64) / 65535 * 2 - 1
        inverse = torch.from_numpy((1 / np.where(np.isinf(scene), 12.0, scene)).astype(np.float32))[None, None]
        exact = depth_to_conditioning(inverse, (HEIGHT, WIDTH))
        assert np.abs(written - exact[0, 0].numpy()).max() < 1e-4  # at the map's own size
    assert not (tmp_path / "out" / "b-depth.png").exists()


def test_batch_pairing_reads_exr_and_npy_maps(tmp_path, scene):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("f_1", "f_2"):
        Image.new("RGB", (WIDTH, HEIGHT)).save(frames / f"{name}.png")
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "f_1-depth.exr").write_bytes(exr_bytes(tmp_path, scene))
    (maps / "f_2.npy").write_bytes(b"\x93NUMPY broken")
    pairing = pair_depth_maps(sorted(frames.iterdir()), maps, policy="estimate")
    depth, problem = load_paired_map(pairing.pairs[0], "estimate", "distance")
    assert problem is None and depth[0, 0] == pytest.approx(1 / 12.0)
    assert pairing.pairs[1].depth_map is None and "f_2.npy is unreadable" in pairing.problems[0]


def test_piz_without_the_openexr_package_says_what_to_do(tmp_path, scene, monkeypatch):
    write_exr(tmp_path / "piz.exr", {"Z": scene.astype(np.float32)}, "PIZ")  # needs the package to write
    monkeypatch.setitem(__import__("sys").modules, "OpenEXR", None)  # as in a WebUI without it
    with pytest.raises(
        ValueError,
        match=r"piz.exr: OpenEXR PIZ files are read through the openexr package; install the openexr package "
        r"\(pip install openexr\) or save the EXR with ZIP compression",
    ):
        read_depth_file(tmp_path / "piz.exr")
