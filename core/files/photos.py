"""Stage 1: read a photo (any format Pillow reads) into an upright RGB array, its alpha mask and EXIF focal length."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

#: Images larger than this are refused before decoding (decompression bombs).
MAX_PIXELS = 80_000_000
MIN_SIDE = 16


@dataclass
class Photo:
    """A loaded photo at working resolution.

    rgb: (H, W, 3) uint8 sRGB, upright (EXIF orientation applied).
    alpha_mask: (H, W) bool when the file has a meaningful alpha channel, else None.
    exif_fov_deg: field of view across the longer side from the EXIF focal length, or None.
    original_size: (width, height) of the file before resizing.
    digest: SHA-256 of the file's bytes (or of the array for in-memory images), for caching.
    full: the in-memory image at its original size when it was made smaller (a file's
    original is read again from ``path`` when needed: see :func:`load_original`).
    """

    rgb: np.ndarray
    alpha_mask: np.ndarray | None
    exif_fov_deg: float | None
    original_size: tuple[int, int]
    digest: str
    path: Path | None = None
    full: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(path: str | Path, max_size: int = 640) -> Photo:
    """Read ``path`` and scale it so its longer side is at most ``max_size`` pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    name = path.name or str(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise InputError(f"The image '{path}' does not exist.") from None
    except OSError as exc:  # a folder on the way that the user may not enter
        raise InputError(f"The image '{path}' cannot be read ({exc.strerror or exc}).") from None
    if not path.exists():
        raise InputError(f"The image '{path}' does not exist.")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, not an image.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"The image '{name}' cannot be read ({exc.strerror or exc}).") from None
    if not data:
        raise InputError(f"The image '{name}' is an empty file (0 bytes).")

    import io
    import warnings

    _check_header_size(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w0, h0 = img.size
            if w0 * h0 > MAX_PIXELS:
                raise InputError(
                    f"The image '{name}' is too large ({w0}x{h0} pixels); "
                    f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
                )
            if min(w0, h0) < MIN_SIDE:
                raise InputError(
                    f"The image '{name}' is too small ({w0}x{h0} pixels); "
                    f"it needs at least {MIN_SIDE} pixels on each side."
                )
            # JPEG decodes straight at 1/2, 1/4 or 1/8 of its size (never below max_size):
            # a 48-MP photo then needs about 3 MB of pixels instead of 144 MB, and less time.
            if img.format == "JPEG" and max(w0, h0) > 2 * max_size:
                img.draft("RGB", (max_size, max_size))
            img.load()
            exif_fov = _exif_fov(img, max(w0, h0))
            swapped = _orientation(img) in (5, 6, 7, 8)  # turned by a quarter
            img = ImageOps.exif_transpose(img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"The image '{name}' is too large to decode safely (over {MAX_PIXELS // 1_000_000} megapixels)."
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"'{name}' is not an image file Pillow can read.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"The image '{name}' is damaged or truncated ({exc}).") from None

    # the file's own size (upright), not the reduced one a draft decoded: the camera's
    # numbers (--focal-px, EXIF) are for it, and the full-size pixels can be read again
    # from ``path`` at that size (load_original)
    original_size = (h0, w0) if swapped else (w0, h0)
    rgb, alpha = _to_rgb_alpha(img)
    rgb, alpha = _resize(rgb, alpha, max_size)
    mask = _meaningful_alpha(alpha, name)
    return Photo(rgb, mask, exif_fov, original_size, hashlib.sha256(data).hexdigest(), path)


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # damaged EXIF: stored as it is shown
        return 1


def load_original(photo: Photo, scale: float = 1.0):
    """``photo`` at its original size, upright, as an RGB Pillow image (cropping and scaling
    it in Pillow avoids copying 12 MP through numpy); None when the working image already
    is that size or the file has changed or gone since it was loaded.

    ``scale`` (at most 1): the share of the original size the caller needs. A JPEG is then
    decoded straight at 1/2, 1/4 or 1/8 of its size where that still gives at least
    ``scale`` of it (Pillow's draft mode): a 48-MP photo's texture then costs a quarter
    or a sixteenth of its 144 MB of pixels.
    """
    from PIL import Image, ImageOps

    if photo.full is not None:
        return Image.fromarray(np.ascontiguousarray(photo.full[:, :, :3]))
    if photo.size == tuple(photo.original_size) or photo.path is None:
        return None
    try:
        data = Path(photo.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != photo.digest:
            return None
        import io

        img = Image.open(io.BytesIO(data))
        w0, h0 = img.size
        if img.format == "JPEG" and scale < 0.5:
            # draft picks the smallest reduction that is still at least the size asked
            img.draft("RGB", (math.ceil(w0 * scale), math.ceil(h0 * scale)))
        img.load()
        if img.getexif().get(0x0112, 1) not in (None, 1):  # only then is a copy needed
            img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":
            img = Image.fromarray(_to_rgb_alpha(img)[0])
    except (OSError, ValueError, SyntaxError):
        return None
    w, h = img.size
    full_w, full_h = photo.original_size
    # the original (or a draft of it: 1/r of each side, rounded up)
    if not any(w == -(-full_w // r) and h == -(-full_h // r) for r in (1, 2, 4, 8)):
        return None
    return img


def _check_header_size(data: bytes, name: str) -> None:
    """Refuse huge images from the PNG header alone: Pillow's own bomb check has no size in its message."""
    import struct

    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        if w * h > MAX_PIXELS:
            raise InputError(
                f"The image '{name}' is too large ({w}x{h} pixels); "
                f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
            )


def photo_from_array(
    rgb: np.ndarray, max_size: int = 640, alpha: np.ndarray | None = None
) -> Photo:
    """Wrap an in-memory image (H, W, 3|4) uint8 or float in [0, 1] as a :class:`Photo`."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"An image array must be (height, width, 3 or 4), not {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr.astype(np.float32)), 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[2] == 4 and alpha is None:
        alpha = arr[:, :, 3]
    rgb8 = np.ascontiguousarray(arr[:, :, :3])
    h, w = rgb8.shape[:2]
    if min(w, h) < MIN_SIDE:
        raise InputError(
            f"The image is too small ({w}x{h} pixels); it needs at least {MIN_SIDE} pixels on each side."
        )
    digest = hashlib.sha256(
        rgb8.tobytes() + (b"" if alpha is None else np.asarray(alpha).tobytes())
    ).hexdigest()
    full = rgb8
    rgb8, a = _resize(rgb8, None if alpha is None else np.asarray(alpha, dtype=np.uint8), max_size)
    return Photo(
        rgb8,
        _meaningful_alpha(a, "image"),
        None,
        (w, h),
        digest,
        None,
        full if full.shape != rgb8.shape else None,
    )


def _to_rgb_alpha(img) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (uint8 RGB, uint8 alpha or None), keeping 16-bit and float ranges right."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = 1.0 if a.max(initial=0) <= 1.0 else max(float(a.max()), 1.0)
        g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))), None


def _resize(rgb: np.ndarray, alpha: np.ndarray | None, max_size: int):
    h, w = rgb.shape[:2]
    scale = max_size / max(w, h)
    if scale >= 1.0:
        return rgb, alpha
    from PIL import Image

    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    if alpha is not None:
        alpha = np.asarray(Image.fromarray(alpha).resize(size, Image.Resampling.BILINEAR))
    return rgb, alpha


def _meaningful_alpha(alpha: np.ndarray | None, name: str) -> np.ndarray | None:
    """The alpha as a mask when it marks an object; None when it is (nearly) all opaque."""
    if alpha is None:
        return None
    mask = alpha >= 128
    share = float(mask.mean())
    if share == 0.0:
        raise InputError(
            f"The image '{name}' is fully transparent: there is nothing to reconstruct."
        )
    if share > 0.995:
        return None
    return mask


def _exif_fov(img, long_side: int) -> float | None:
    """Field of view across the longer side from EXIF (35 mm-equivalent focal length, else focal-plane resolution)."""
    from ..geometry.camera import fov_from_35mm

    try:
        exif = img.getexif()
        sub = exif.get_ifd(0x8769)  # Exif sub-IFD holds the focal lengths
    except Exception:  # damaged EXIF is common and never worth failing a photo for
        return None
    f35 = sub.get(0xA405) or exif.get(0xA405)
    try:
        if f35 and float(f35) > 0:
            return fov_from_35mm(float(f35))
        f_mm = sub.get(0x920A)
        xres = sub.get(0xA20E)
        unit = sub.get(0xA210, 2)
        if f_mm and xres and float(f_mm) > 0 and float(xres) > 0:
            mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}.get(int(unit))
            if mm_per_unit:
                sensor_mm = long_side / float(xres) * mm_per_unit
                fov = math.degrees(2 * math.atan(sensor_mm / (2 * float(f_mm))))
                if 1.0 < fov < 170.0:
                    return fov
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None
