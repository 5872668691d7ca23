"""pygan's fused ops: one reference implementation in plain PyTorch per op, and compiled backends
that compute the same maths faster (C++ on the CPU, CUDA and Triton on GPUs).

Public functions (each takes ``backend=`` as a keyword):

    pixel_norm(x, eps=1e-8)
    bias_lrelu(x, bias=None, *, scale=1.0, negative_slope=0.2, gain=1.0)
    bias_lrelu_pixel_norm(x, bias=None, *, scale=1.0, negative_slope=0.2, gain=1.0, eps=1e-8)
    minibatch_std(x, group_size=4, num_channels=1, eps=1e-8, *, unbiased=False)
    fade_in(low, high, alpha, *, activation=None)
    gradient_penalty(grad, target=1.0)
    instance_norm_act(x, weight=None, bias=None, *, activation=None, negative_slope=0.2, eps=1e-5,
                      residual=None)

Backend selection: :func:`set_backend`, :func:`use_backend`, the environment variable
``PYGAN_BACKEND``, and :func:`available_backends` to see what can run here and why not.

CPU output cache: the C++ CPU kernels take their large outputs from a recycling
allocator (limit ``PYGAN_CPU_CACHE_MB``, default 512, 0 disables); :mod:`pygan.ops.cpu_cache`
reports and empties it.
"""

from . import _library
from . import bias_lrelu as _bias_lrelu
from . import bias_lrelu_pixel_norm as _bias_lrelu_pixel_norm
from . import fade_in as _fade_in
from . import gradient_penalty as _gradient_penalty
from . import instance_norm_act as _instance_norm_act
from . import minibatch_std as _minibatch_std
from . import pixel_norm as _pixel_norm
from ._registry import (BACKENDS, BackendStatus, available_backends, get_backend, set_backend,
                        use_backend)
from .bias_lrelu import bias_lrelu, bias_lrelu_reference
from .bias_lrelu_pixel_norm import bias_lrelu_pixel_norm, bias_lrelu_pixel_norm_reference
from .fade_in import fade_in, fade_in_reference
from .gradient_penalty import gradient_penalty, gradient_penalty_reference
from .instance_norm_act import instance_norm_act, instance_norm_act_reference
from .minibatch_std import minibatch_std, minibatch_std_reference
from .pixel_norm import pixel_norm, pixel_norm_reference

#: Every op module; each defines ``<op>``, ``<op>_reference`` and ``register(namespace)``.
OP_MODULES = (_pixel_norm, _bias_lrelu, _bias_lrelu_pixel_norm, _minibatch_std, _fade_in,
              _gradient_penalty, _instance_norm_act)
OPS = tuple(m.__name__.rsplit(".", 1)[1] for m in OP_MODULES)

_library.load(OP_MODULES)
_library.load_triton(OP_MODULES)


def __getattr__(name):
    """``pygan.ops.selftest``: the self-test module, callable as ``selftest(device)``; imported on
    first use so that ``python -m pygan.ops.selftest`` runs it fresh."""
    if name == "selftest":
        import importlib
        return importlib.import_module(f"{__name__}.selftest")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BACKENDS", "BackendStatus", "OPS", "available_backends", "get_backend", "set_backend",
    "use_backend", "bias_lrelu", "bias_lrelu_pixel_norm", "fade_in", "gradient_penalty",
    "instance_norm_act", "minibatch_std", "pixel_norm", "bias_lrelu_reference", "bias_lrelu_pixel_norm_reference",
    "fade_in_reference", "gradient_penalty_reference", "instance_norm_act_reference", "minibatch_std_reference",
    "pixel_norm_reference",
]
