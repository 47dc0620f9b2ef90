"""Stage 3: depth: a Hugging Face depth network (PyTorch or verified ONNX Runtime), a depth map file, or the inflated silhouette."""
