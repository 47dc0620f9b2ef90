"""Stage 2: the object's mask: rembg or a user's ONNX model, the weight-free colour key, and the cleanup every mask gets."""
