"""Stage 1: every image Pillow reads comes in upright, RGB, with its alpha mask and EXIF focal length."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.files.photos import load_image, photo_from_array

from ..conftest import toy_photo


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.mark.parametrize(
    "ext,kw",
    [
        (".jpg", {"quality": 95}),
        (".png", {}),
        (".webp", {"quality": 95}),
        (".tif", {}),
        (".bmp", {}),
    ],
)
def test_formats_load_as_rgb(tmp_path, ext, kw):
    img, mask = toy_photo()
    path = _save(Image.fromarray(img), tmp_path / f"toy{ext}", **kw)
    photo = load_image(path)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == img.shape
    assert photo.alpha_mask is None
    # colours survive (lossy formats within a few levels, inside the object away from edges)
    inner = np.zeros_like(mask)
    inner[50:70, 40:60] = True
    assert np.abs(photo.rgb[inner].astype(int) - img[inner].astype(int)).mean() < 6


def test_rgba_alpha_becomes_the_mask(tmp_path):
    img, mask = toy_photo()
    rgba = np.dstack([img, np.where(mask, 255, 0).astype(np.uint8)])
    photo = load_image(_save(Image.fromarray(rgba), tmp_path / "cut.png"))
    assert photo.alpha_mask is not None
    assert (photo.alpha_mask == mask).mean() > 0.99


def test_opaque_alpha_is_not_a_mask(tmp_path):
    img, _ = toy_photo()
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert load_image(_save(Image.fromarray(rgba), tmp_path / "opaque.png")).alpha_mask is None


def test_sixteen_bit_png_keeps_its_range(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    photo = load_image(_save(Image.fromarray(ramp), tmp_path / "g16.png"))
    assert photo.rgb.shape == (48, 64, 3)
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[-1, -1, 0] == 255
    assert abs(int(photo.rgb[24, 32, 0]) - 128) <= 2  # not clipped to 255 as a naive convert would


def test_palette_png_with_transparency(tmp_path):
    img, mask = toy_photo()
    pal = Image.fromarray(img).quantize(colors=16)
    # make the background's palette entry transparent
    bg_index = np.asarray(pal)[0, 0]
    pal.info["transparency"] = int(bg_index)
    path = tmp_path / "pal.png"
    pal.save(path, transparency=int(bg_index))
    photo = load_image(path)
    assert photo.alpha_mask is not None
    assert (photo.alpha_mask == mask).mean() > 0.97


def test_grayscale_and_cmyk(tmp_path):
    img, _ = toy_photo()
    g = load_image(_save(Image.fromarray(img).convert("L"), tmp_path / "g.jpg"))
    assert g.rgb.shape == img.shape and (g.rgb[..., 0] == g.rgb[..., 1]).all()
    c = load_image(_save(Image.fromarray(img).convert("CMYK"), tmp_path / "c.jpg"))
    assert c.rgb.shape == img.shape
    assert abs(int(c.rgb[66, 40, 0]) - int(img[66, 40, 0])) < 20  # the red half stays red


def test_exif_orientation_is_applied(tmp_path):
    img, _ = toy_photo(160, 120)
    pil = Image.fromarray(img).rotate(90, expand=True)  # stored sideways (120 wide, 160 tall)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": undoes the rotation above
    path = _save(pil, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    photo = load_image(path)
    assert photo.rgb.shape == (120, 160, 3)  # upright again
    left, right = photo.rgb[66, 40].astype(int), photo.rgb[66, 120].astype(int)
    assert left[0] > left[2] + 80 and right[2] > right[0] + 80  # red on the left, blue on the right


def test_exif_focal_length_gives_field_of_view(tmp_path):
    img, _ = toy_photo()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 50  # 50 mm equivalent
    photo = load_image(_save(Image.fromarray(img), tmp_path / "f.jpg", exif=exif.tobytes()))
    assert photo.exif_fov_deg == pytest.approx(math.degrees(2 * math.atan(18 / 50)), abs=1e-6)


def test_working_size_is_capped(tmp_path):
    img = np.zeros((1000, 1500, 3), np.uint8)
    photo = load_image(_save(Image.fromarray(img), tmp_path / "big.png"), max_size=300)
    assert photo.size == (300, 200) and photo.original_size == (1500, 1000)


def test_array_input():
    img, _ = toy_photo()
    photo = photo_from_array(img)
    assert photo.rgb.shape == img.shape and photo.path is None
    assert photo_from_array(img.astype(np.float32) / 255).rgb.shape == img.shape


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.jpg", "The image '{p}/missing.jpg' does not exist."),
        (lambda p: p, "'{p}' is a folder, not an image."),
        (
            lambda p: _write(p / "empty.jpg", b""),
            "The image 'empty.jpg' is an empty file (0 bytes).",
        ),
        (
            lambda p: _write(p / "notes.jpg", b"just some text\n"),
            "'notes.jpg' is not an image file Pillow can read.",
        ),
    ],
)
def test_unreadable_inputs_have_one_sentence(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(err.value) == message.format(p=tmp_path)


def test_truncated_jpeg(tmp_path):
    img, _ = toy_photo()
    full = tmp_path / "full.jpg"
    Image.fromarray(img).save(full, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(InputError, match=r"^The image 'cut\.jpg' is damaged or truncated"):
        load_image(cut)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert (
        str(err.value)
        == "The image 'bomb.png' is too large (40000x40000 pixels); the limit is 80 megapixels."
    )


def test_tiny_image_is_refused(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(_save(Image.new("RGB", (1, 1)), tmp_path / "dot.png"))
    assert (
        str(err.value)
        == "The image 'dot.png' is too small (1x1 pixels); it needs at least 16 pixels on each side."
    )


def test_fully_transparent_image_is_refused(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(_save(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), tmp_path / "clear.png"))
    assert (
        str(err.value)
        == "The image 'clear.png' is fully transparent: there is nothing to reconstruct."
    )


# --- large photos: decoded at a reduced size, the original still at hand ----------------------


def _peak_rss_mib(code: str) -> float:
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss / 1024


def test_a_48_megapixel_jpeg_loads_in_about_the_memory_of_a_small_one(tmp_path):
    from PIL import Image

    from core.files.photos import load_image

    toy = Image.open(Path(__file__).resolve().parents[3] / "examples" / "toy.jpg").convert("RGB")
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    toy.resize((8000, 6000), Image.Resampling.BILINEAR).save(big, quality=90)
    toy.resize((640, 480)).save(small, quality=90)
    code = "from core.files.photos import load_image; p = load_image({!r}); assert p.size == (640, 480)"
    peaks = {
        name: _peak_rss_mib(code.format(str(path)))
        for name, path in (("big", big), ("small", small))
    }
    # decoded whole, the big one alone is 137 MiB of pixels
    assert peaks["big"] <= 1.2 * peaks["small"], peaks
    photo = load_image(big)
    assert photo.original_size == (8000, 6000) and photo.size == (640, 480)


def test_the_original_size_and_pixels_stay_at_hand(tmp_path):
    from PIL import Image

    from core.files.photos import load_image, load_original, photo_from_array

    img, _ = toy_photo(2000, 1500)
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    Image.fromarray(img).save(path, quality=92, exif=exif.tobytes())
    photo = load_image(path, max_size=400)
    assert photo.size == (300, 400) and photo.original_size == (1500, 2000)
    original = load_original(photo)
    assert original.size == (1500, 2000)
    # the same picture: the working image is the original scaled down
    small = np.asarray(original.convert("RGB").resize(photo.size, Image.Resampling.LANCZOS))
    assert np.abs(small.astype(int) - photo.rgb.astype(int)).mean() < 4
    # an in-memory photo keeps its own full-size pixels
    in_memory = load_original(photo_from_array(img, max_size=400))
    assert in_memory.size == (2000, 1500)
    np.testing.assert_array_equal(np.asarray(in_memory), img[:, :, :3])
    # a file changed since: None, and the texture falls back to the working copy
    path.write_bytes(path.read_bytes() + b"changed")
    assert load_original(photo) is None
