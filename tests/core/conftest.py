"""Shared fixtures of the core's tests: an isolated data folder, tiny random models, synthetic photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import (
    export_tiny_segmenter,
    install_in_hf_cache,  # noqa: F401  (re-exported for the tests)
    save_tiny_depth_anything,
    save_tiny_glpn,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own IMG2MESH_HOME and no network: models come only from local files."""
    home = tmp_path_factory.mktemp("img2mesh-home")
    monkeypatch.setenv("IMG2MESH_HOME", str(home))
    for var in (
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "U2NET_HOME",
        "REMBG_HOME",
        "TRANSFORMERS_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    # A proxy nobody listens on: any download attempt fails at once, as it would offline.
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from core.storage import datafolder

    # warnings about the data folder are said once per process: once per test here
    datafolder._said.clear()
    datafolder._pending.clear()
    return home


@pytest.fixture(scope="session")
def tiny_glpn(tmp_path_factory) -> Path:
    return save_tiny_glpn(tmp_path_factory.mktemp("tiny-glpn"))


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory) -> Path:
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny-depth-anything"))


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory) -> Path:
    return export_tiny_segmenter(tmp_path_factory.mktemp("onnx") / "tiny_seg.onnx")


def toy_photo(
    width: int = 160, height: int = 120, background=(245, 245, 245)
) -> tuple[np.ndarray, np.ndarray]:
    """A plain-background photo of a shaded two-colour ellipse and its true mask."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy, rx, ry = width * 0.5, height * 0.55, width * 0.3, height * 0.33
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    mask = r2 <= 1.0
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    shade = np.clip(1.0 - 0.4 * r2, 0.5, 1.0)
    red = np.stack([220 * shade, 40 * shade, 30 * shade], axis=-1)
    blue = np.stack([30 * shade, 60 * shade, 200 * shade], axis=-1)
    body = np.where((xx < cx)[..., None], red, blue).astype(np.uint8)
    img[mask] = body[mask]
    return img, mask


@pytest.fixture
def toy_jpeg(tmp_path) -> tuple[Path, np.ndarray]:
    from PIL import Image

    img, mask = toy_photo()
    path = tmp_path / "toy photo ü.jpg"  # spaces and non-ASCII on purpose
    Image.fromarray(img).save(path, quality=95)
    return path, mask


def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real test data not found at {SHARED_DATA} (the shared/ folder is not beside this clone)"
        )
    return SHARED_DATA
