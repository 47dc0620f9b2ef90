"""Core errors worded in the add-on's terms from their fields, not by rewriting sentences."""

from __future__ import annotations

import re

import pytest

from core.errors import Img2MeshError
from img2mesh_addon.logic.messages import OFFLINE, error_text


def as_event(exc: Img2MeshError) -> dict:
    """What core/worker/serve.py sends for a user error."""
    return {
        "kind": type(exc).__name__,
        "message": str(exc),
        "code": exc.code,
        "field": exc.field,
        "details": exc.details,
    }


def no_flags(text: str) -> bool:
    return not re.search(r"(?<![\w-])--[a-z]", re.sub(r"`[^`]*`", "", text))


def test_an_unavailable_device_names_the_preference():
    pytest.importorskip("torch")
    import torch

    from core.networks.devices import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(Img2MeshError) as error:
        pick_device("cuda")
    assert "--device cuda" in str(error.value)
    assert error_text(as_event(error.value)) == (
        "CUDA was asked for (Device: CUDA, in the add-on's preferences) but no CUDA GPU is "
        "available to PyTorch."
    )


def test_an_unavailable_depth_model_offline_says_what_to_do_in_blender(tmp_path, monkeypatch):
    from core.depth.estimator import DepthEstimator

    pytest.importorskip("transformers")
    from core.errors import ModelUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as raised:
        DepthEstimator("img2mesh-test/absent-depth", device="cpu").load()
    error = raised.value
    text = error_text(as_event(error), online=False)
    assert text.startswith("The depth model 'img2mesh-test/absent-depth' could not be loaded")
    assert text.endswith(
        "and give that folder as the Depth Model. Without weights, Depth: Inflate Silhouette "
        "still makes a mesh. " + OFFLINE
    )
    assert no_flags(text) and not no_flags(str(error))


def test_the_plain_backdrop_message():
    event = {"kind": "InputError", "message": "x --segment key", "code": "key_found_nothing"}
    assert error_text(event) == (
        "No object stands out from the background colour: Plain Backdrop needs an object on a "
        "plain background."
    )


def test_an_error_without_a_code_is_shown_as_the_core_wrote_it():
    event = {"kind": "InputError", "message": "The image 'x.jpg' does not exist."}
    assert error_text(event, online=False) == "The image 'x.jpg' does not exist."
    unknown = {"kind": "OptionError", "message": "Said as is.", "code": "from_a_newer_core"}
    assert error_text(unknown) == "Said as is."
    assert error_text({"kind": "ModelUnavailableError", "message": "No."}, online=False) == (
        "No. " + OFFLINE
    )


@pytest.mark.parametrize(
    "code, details",
    [
        ("rembg_model_unavailable", {"model": "u2net", "folder": "/m/u2net", "reason": "offline"}),
        (
            "t2i_model_unavailable",
            {
                "model": "a/b",
                "where": "/hf",
                "reason": "401",
                "download": "hf download a/b",
                "gated": "yes",
            },
        ),
    ],
)
def test_model_advice_names_the_add_ons_settings(code, details):
    text = error_text(
        {"kind": "ModelUnavailableError", "message": "--x", "code": code, "details": details}
    )
    assert no_flags(text), text
    assert details["model"] in text
    if code == "t2i_model_unavailable":
        assert "prompt's Model" in text and "hf auth login" in text
    else:
        assert "Background Removal Model" in text and "Plain Backdrop" in text
