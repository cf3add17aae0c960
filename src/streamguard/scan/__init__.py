"""Scanning C code with a trained model: bundles, the detector API, findings and their output formats."""

# of the neural forward passes (scan --precision, streamguard.load); onnx and int8: the transformer's on ONNX
# Runtime (models/onnx_runtime.py)
PRECISIONS = ("auto", "fp32", "bf16", "onnx", "int8")
