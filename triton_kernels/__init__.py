"""Triton kernels of pygan, installed as ``pygan.triton_kernels`` (one module per op).

:func:`define_ops` defines every op of ``csrc/schemas.cpp`` again in the namespace
``torch.ops.pygan_triton`` (same names, same schemas), each launching its Triton kernel.
Fake kernels and autograd are registered afterwards by ``pygan.ops`` with the same helpers as the
C++ ops, so both backends share one autograd formula per op.
"""


def define_ops() -> None:
    raise NotImplementedError("the Triton backend is not implemented yet")
