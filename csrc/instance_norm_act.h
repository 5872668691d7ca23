// Argument checks of pygan::instance_norm_act and its _bwd op, shared by the CPU (.cpp) and CUDA
// (.cu) kernels so that both backends refuse the same inputs with the same words.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace pygan {

inline void check_instance_norm_act_inputs(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                           const std::optional<at::Tensor>& bias, const char* op) {
  TORCH_CHECK(x.dim() >= 3 && x.is_floating_point(), "pygan::", op,
              ": x must be a floating-point (N, C, *spatial) tensor, got ", x.sizes());
  int64_t S = 1;
  for (int64_t dim = 2; dim < x.dim(); ++dim) S *= x.size(dim);
  TORCH_CHECK(S > 1 || x.numel() == 0, "pygan::", op,
              ": instance norm needs more than one spatial element per channel, got x of shape ", x.sizes());
  for (const auto* t : {&weight, &bias}) {
    if (!t->has_value()) continue;
    const char* name = t == &weight ? "weight" : "bias";
    TORCH_CHECK((*t)->dim() == 1 && (*t)->size(0) == x.size(1), "pygan::", op, ": ", name,
                " must be (C,) with C = ", x.size(1), ", got ", (*t)->sizes());
    TORCH_CHECK((*t)->scalar_type() == x.scalar_type() && (*t)->device() == x.device(), "pygan::", op, ": ",
                name, " must have x's dtype and device");
  }
}

}  // namespace pygan
