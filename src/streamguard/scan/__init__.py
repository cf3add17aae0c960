"""Scanning C code with a trained model: bundles, the detector API, findings and their output formats."""
