"""Embedding networks, training, embedding and ONNX export. Importing this package is light (no torch)."""
