"""Scanning C code with a trained model: bundles, the detector API, findings and their output formats."""

PRECISIONS = ("auto", "fp32", "bf16")  # of the neural forward passes (scan --precision, streamguard.load)
