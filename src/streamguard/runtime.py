"""Process set-up that stages need before they work (torch's CPU mode, console logging).

Low in the import graph on purpose: a stage (the cloud container, a pipeline step) calls these without
importing the command line, which sits above every stage.
"""
from __future__ import annotations

import logging
import os


def prepare_torch_cpu() -> None:
    """Call before torch starts its thread pool. OpenMP threads must not busy-wait (they thrash on shared
    cores), and denormal floats are flushed to zero: Adam's L2 decay drives the weights of dead ReLU units into
    the denormal range (a quarter to half of the GNN's hidden weights by epoch 5), which made every matrix
    product up to 10x slower (GNN epochs went from 58 s to 240 s). New threads inherit the floating-point mode
    of the thread that creates them, hence before the first parallel op."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_flush_denormal(True)


def log_info() -> None:
    """INFO lines on the console (training progress); a no-op when logging is configured already."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
