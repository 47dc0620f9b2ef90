"""Running networks: the model hub, devices, ONNX Runtime sessions, INT8 copies, how close two outputs are, text to image."""
