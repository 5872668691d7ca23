"""pygan: a GAN toolkit for PyTorch whose hot paths are fused custom ops.

    import pygan
    pygan.ops.pixel_norm(x)                 # fused ops with reference, C++, CUDA and Triton backends
    pygan.accelerate(model)                 # existing GAN code on those ops, in place
"""

__version__ = "0.1.0"

from . import ops  # noqa: E402  (loads the compiled extension when it is built)
from .dropin import AccelerateReport, accelerate, restore  # noqa: E402

__all__ = ["AccelerateReport", "accelerate", "ops", "restore", "__version__"]
