// (N, C, S) views of tensors in any dense layout and output allocation that matches the fake
// kernels: shared by the CPU (.cpp) and CUDA (.cu) kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <optional>

namespace pygan {

// A tensor seen as (N, C, S): dims 2.. collapsed into one spatial dim with a single stride.
// NCHW gives (sc, ss) = (S, 1); channels_last gives (1, C).
struct NCS {
  int64_t n = 1, c = 1, s = 1;
  int64_t sn = 0, sc = 0, ss = 0;
  // Channels are the innermost (smallest-stride) dim: loop over c innermost.
  bool channels_inner() const { return c > 1 && sc < ss && s > 1; }
};

// True (and fills v) if dims 2.. of t collapse into a single stride.
bool as_ncs(const at::Tensor& t, NCS& v);

// t itself if it collapses to (N, C, S), else a contiguous copy of it; v describes the result.
at::Tensor ncs_input(const at::Tensor& t, NCS& v);

// An output laid out as `out` (allocated by the caller exactly as the fake kernel allocates);
// kernels write into `work`, which is `out` itself unless out's dims don't collapse.
struct NCSOutput {
  at::Tensor out, work;
  NCS v;
  explicit NCSOutput(at::Tensor o);
  at::Tensor finish();
};

// A new tensor of `sizes` in channels_last when `like` is channels_last (and not also plainly
// contiguous), else contiguous: the rule the Python fake kernels follow
// (pygan.ops.minibatch_std.output_memory_format).
at::Tensor empty_in_layout_of(at::IntArrayRef sizes, const at::Tensor& like);

// x must be (N, C, *spatial) floating point; bias, when given, (C,) with x's dtype and device.
inline void check_x_bias(const at::Tensor& x, const std::optional<at::Tensor>& bias, const char* op) {
  TORCH_CHECK(x.dim() >= 2 && x.is_floating_point(), "pygan::", op,
              ": x must be a floating-point (N, C, *spatial) tensor, got ", x.sizes());
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), "pygan::", op,
                ": bias must be (C,) with C = ", x.size(1), ", got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->device() == x.device(), "pygan::",
                op, ": bias must have x's dtype and device");
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace pygan
