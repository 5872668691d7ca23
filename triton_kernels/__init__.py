"""Triton kernels of pygan, installed as ``pygan.triton_kernels`` (one module per op)."""
