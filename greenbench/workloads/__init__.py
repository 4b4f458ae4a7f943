"""Workloads: inference (prefill + decode on onnxruntime) and training (PyTorch, optional extra)."""
