"""A user's own segmentation ONNX file: checked, its family told from its graph, normalised as that family wants."""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError, first_line
from .sessions import NORMALIZATIONS, U2netSession


def detect_family(path: Path, input_shape) -> str:
    """``u2net``, ``isnet`` or ``birefnet``: the family of a custom segmentation model, from its graph.

    A model with a dynamic (or 320 x 320) input is U^2-Net-style: ImageNet's
    statistics, as rembg's custom session uses. A fixed larger input is one of the
    1024-pixel families: those whose first output comes out of a Sigmoid (``isnet``:
    IS-Net/DIS, BRIA RMBG, BEN) take mean 0.5 and std 1; one that outputs logits
    (``birefnet``) takes ImageNet's and a sigmoid after. Without the onnx package to
    read the graph, a fixed input means ``isnet``.
    """
    spatial = list(input_shape[2:]) if len(input_shape) == 4 else []
    if not all(isinstance(v, int) for v in spatial) or max(spatial or [0]) <= 320:
        return "u2net"
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # no onnx package, or a graph only onnxruntime reads
        return "isnet"
    made_by = {out: node for node in graph.node for out in node.output}
    node = made_by.get(graph.output[0].name)
    for _ in range(8):  # through casts (fp16 models) and reshapes to the last real step
        if node is None or node.op_type not in _PASS_THROUGH:
            break
        node = made_by.get(node.input[0])
    return "birefnet" if node is not None and node.op_type != "Sigmoid" else "isnet"


#: Steps after a model's last activation that keep its values' range.
_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose"}


#: The input normalisation of each family detect_family tells apart.
FAMILY_NORMALIZATION = {"u2net": "imagenet", "isnet": "half", "birefnet": "imagenet"}


def custom_session(path: Path, normalize: str = "auto", quantize: str = "off"):
    """A session on a segmentation .onnx file the user chose, checked before onnxruntime sees it.

    The user's file is checked here (exists, .onnx, parses, image input) rather than by
    rembg, which only accepts custom files under its own model folder. Its input size
    is read from it; ``normalize`` ``auto`` takes the one of its family (:func:`detect_family`).
    """
    if normalize not in ("auto", *NORMALIZATIONS):
        raise OptionError(
            f"Unknown input normalisation '{normalize}': choose auto, {', '.join(NORMALIZATIONS)}."
        )
    if not path.exists():
        raise OptionError(f"The custom ONNX model '{path}' does not exist.")
    if not path.is_file() or path.suffix.lower() != ".onnx":
        raise OptionError(f"The custom model '{path}' must be a .onnx file.")
    try:
        session = U2netSession(path, clip=False, quantize=quantize)
    except Exception as exc:
        raise OptionError(
            f"The custom ONNX model '{path.name}' cannot be loaded ({first_line(exc)})."
        ) from None
    inputs = session.inner_session.get_inputs()
    shape = inputs[0].shape if inputs else []
    if (
        len(inputs) != 1
        or len(shape) != 4
        or shape[1] not in (3, "3")
        and not isinstance(shape[1], str)
    ):
        raise OptionError(
            f"The custom ONNX model '{path.name}' has input shape {shape}; "
            "a segmentation model must take one 1x3xHxW image."
        )
    family = detect_family(path, shape)
    session.normalize = FAMILY_NORMALIZATION[family] if normalize == "auto" else normalize
    session.sigmoid = family == "birefnet"
    return session
