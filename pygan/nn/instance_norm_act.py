"""Instance norm with its activation (and an optional residual add) as one layer, computed by
pygan's fused ``instance_norm_act`` op."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..ops.instance_norm_act import ACTIVATIONS
from . import _validate


class InstanceNormAct(nn.InstanceNorm2d):
    """``act(instance_norm(x) * weight[c] + bias[c]) (+ residual)``, statistics per sample and
    channel over the spatial dims (biased variance, no running statistics):

        y = act((x - mean_hw x) / sqrt(var_hw x + eps) * weight[c] + bias[c]) + residual

    with act the identity (``activation=None``), ``"relu"`` or ``"lrelu"`` (slope
    ``negative_slope``). ``forward(x, residual=None)``; x is (N, C, *spatial) with more than one
    spatial element, any memory layout.

    A subclass of ``nn.InstanceNorm2d`` (``track_running_stats=False``): with ``activation=None``
    it computes what ``nn.InstanceNorm2d(num_features, eps=eps, affine=affine)`` computes, with the
    same state (``weight`` ones and ``bias`` zeros, both (num_features,), when ``affine``; nothing
    otherwise), so the two load each other's state_dicts, and code that looks for instance-norm
    layers by type finds it (with its activation: replacing it replaces both).
    """

    def __init__(self, num_features: int, affine: bool = False, activation: str | None = None,
                 negative_slope: float = 0.2, eps: float = 1e-5) -> None:
        num_features = _validate.positive_int("num_features", num_features)
        if not isinstance(affine, bool):
            raise TypeError(f"affine must be a bool, got {type(affine).__name__}")
        eps = _validate.real("eps", eps, low=0.0)
        super().__init__(num_features, eps=eps, affine=affine, track_running_stats=False)
        self.activation = _validate.choice("activation", activation, ACTIVATIONS)
        self.negative_slope = _validate.real("negative_slope", negative_slope, low=0.0)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] != self.num_features:
            raise ValueError(f"x has {x.shape[1]} channels but this InstanceNormAct was built for "
                             f"num_features={self.num_features}; got x of shape {tuple(x.shape)}")
        fused = residual is None or (isinstance(x, torch.Tensor) and residual.dtype == x.dtype)
        y = ops.instance_norm_act(x, self.weight, self.bias, activation=self.activation,
                                  negative_slope=self.negative_slope, eps=self.eps,
                                  residual=residual if fused else None)
        # a residual of another dtype (autocast: a float32 skip path around a bfloat16 conv) is
        # added outside the op, with PyTorch's type promotion, as ``y + residual`` would be
        return y if fused else y + residual

    def extra_repr(self) -> str:
        act = "" if self.activation is None else f", activation={self.activation!r}"
        if self.activation == "lrelu":
            act += f", negative_slope={self.negative_slope:g}"
        return f"{self.num_features}, eps={self.eps:g}, affine={self.affine}{act}"
