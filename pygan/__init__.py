"""pygan: a GAN toolkit for PyTorch whose hot paths are fused custom ops.

    import pygan
    pygan.ops.pixel_norm(x)                 # fused ops with reference, C++, CUDA and Triton backends
"""

__version__ = "0.1.0"

from . import ops  # noqa: E402  (loads the compiled extension when it is built)

__all__ = ["ops", "__version__"]
