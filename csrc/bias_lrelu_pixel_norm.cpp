// Bias + leaky ReLU + pixel norm, CPU, one pass over x per block of pixels.
//   a = gain * leaky_relu(x * scale + bias[c], slope),  y = a * r,  r = rsqrt(mean_c a^2 + eps)
// Backward (a recomputed from x, never stored):
//   da = r * g - r^3 * a * mean_c(g * a);  dz = da * gain * (a > 0 ? 1 : slope)
//   dx = scale * dz;  dbias[c] = sum_{n, s} dz
#include "common.h"

namespace pygan {
namespace {

// The activation a = gain * lrelu(x * scale + b, slope), with pos = gain, neg = gain * slope.
template <typename acc_t>
struct Act {
  acc_t scale, pos, neg;
  Act(double scale_, double slope, double gain) : scale(scale_), pos(gain), neg(gain * slope) {}
  acc_t operator()(acc_t x, acc_t b) const { return lrelu_gain<acc_t>(x * scale + b, pos, neg); }
  acc_t slope_of(acc_t a) const { return a > acc_t(0) ? pos : neg; }
};

template <typename scalar_t>
void fused_kernel(const scalar_t* x, NCS xv, const scalar_t* bias, scalar_t* y, NCS yv,
                  Act<at::opmath_type<scalar_t>> act, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  at::parallel_for(0, xv.n * blocks, grain_for(C * kPixelBlock), [&, act, inv_c, e](int64_t begin, int64_t end) {
    const Act<acc_t> f = act;  // task-local: cannot alias the outputs
    acc_t r[kPixelBlock];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t n = b / blocks, s0 = (b % blocks) * kPixelBlock;
      const int64_t len = std::min(kPixelBlock, S - s0);
      const scalar_t* xb = x + n * xv.sn + s0 * xv.ss;
      scalar_t* yb = y + n * yv.sn + s0 * yv.ss;
      std::fill(r, r + len, acc_t(0));
      for (int64_t c = 0; c < C; ++c) {
        const acc_t bc = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
        const scalar_t* xc = xb + c * xv.sc;
        for (int64_t i = 0; i < len; ++i) {
          const acc_t a = f(static_cast<acc_t>(xc[i * xv.ss]), bc);
          r[i] += a * a;
        }
      }
      for (int64_t i = 0; i < len; ++i) r[i] = acc_t(1) / std::sqrt(r[i] * inv_c + e);
      for (int64_t c = 0; c < C; ++c) {
        const acc_t bc = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
        const scalar_t* xc = xb + c * xv.sc;
        scalar_t* yc = yb + c * yv.sc;
        for (int64_t i = 0; i < len; ++i) yc[i * yv.ss] = f(static_cast<acc_t>(xc[i * xv.ss]), bc) * r[i];
      }
    }
  });
}

template <typename scalar_t>
void fused_bwd_kernel(const scalar_t* g, NCS gv, const scalar_t* x, NCS xv, const scalar_t* bias,
                      scalar_t* dx, NCS dv, scalar_t* db, Act<at::opmath_type<scalar_t>> act,
                      double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = xv.n, C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  // Blocks are grouped into at most kMaxChunks chunks, each with its own bias partial sums.
  const int64_t units = N * blocks, chunk = ceil_div(units, kMaxChunks), chunks = ceil_div(units, chunk);
  std::vector<acc_t> partial(db ? chunks * C : 0, acc_t(0));
  at::parallel_for(0, chunks, 1, [&, act, inv_c, e](int64_t kbegin, int64_t kend) {
    const Act<acc_t> f = act;
    acc_t r[kPixelBlock], k3[kPixelBlock];
    for (int64_t k = kbegin; k < kend; ++k) {
      acc_t* part = db ? partial.data() + k * C : nullptr;
      for (int64_t b = k * chunk; b < std::min(units, (k + 1) * chunk); ++b) {
        const int64_t n = b / blocks, s0 = (b % blocks) * kPixelBlock;
        const int64_t len = std::min(kPixelBlock, S - s0);
        const scalar_t* xb = x + n * xv.sn + s0 * xv.ss;
        const scalar_t* gb = g + n * gv.sn + s0 * gv.ss;
        scalar_t* db_ = dx + n * dv.sn + s0 * dv.ss;
        std::fill(r, r + len, acc_t(0));
        std::fill(k3, k3 + len, acc_t(0));
        for (int64_t c = 0; c < C; ++c) {
          const acc_t bc = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
          const scalar_t* xc = xb + c * xv.sc;
          const scalar_t* gc = gb + c * gv.sc;
          for (int64_t i = 0; i < len; ++i) {
            const acc_t a = f(static_cast<acc_t>(xc[i * xv.ss]), bc);
            r[i] += a * a;
            k3[i] += static_cast<acc_t>(gc[i * gv.ss]) * a;
          }
        }
        for (int64_t i = 0; i < len; ++i) {
          const acc_t ri = acc_t(1) / std::sqrt(r[i] * inv_c + e);
          r[i] = ri;
          k3[i] = ri * ri * ri * k3[i] * inv_c;
        }
        for (int64_t c = 0; c < C; ++c) {
          const acc_t bc = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
          const scalar_t* xc = xb + c * xv.sc;
          const scalar_t* gc = gb + c * gv.sc;
          scalar_t* dc = db_ + c * dv.sc;
          acc_t sum = 0;
          for (int64_t i = 0; i < len; ++i) {
            const acc_t a = f(static_cast<acc_t>(xc[i * xv.ss]), bc);
            const acc_t dz = (r[i] * static_cast<acc_t>(gc[i * gv.ss]) - k3[i] * a) * f.slope_of(a);
            dc[i * dv.ss] = dz * f.scale;
            sum += dz;
          }
          if (part) part[c] += sum;
        }
      }
    }
  });
  if (db) {
    for (int64_t c = 0; c < C; ++c) {
      acc_t sum = 0;
      for (int64_t k = 0; k < chunks; ++k) sum += partial[k * C + c];
      db[c] = sum;
    }
  }
}

at::Tensor bias_lrelu_pixel_norm_cpu(const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
                                     double scale, double slope, double gain, double eps) {
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm");
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_lrelu_pixel_norm", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    fused_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), xv,
                           bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                           y.work.mutable_data_ptr<scalar_t>(), y.v,
                           Act<acc_t>(scale, slope, gain), eps);
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor> bias_lrelu_pixel_norm_bwd_cpu(
    const at::Tensor& grad_, const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
    double scale, double slope, double gain, double eps, bool bias_grad) {
  check_x_bias(x_, bias_, "bias_lrelu_pixel_norm_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::bias_lrelu_pixel_norm_bwd: grad must match x in shape and dtype");
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput dx(at::empty_like(grad_));
  at::Tensor db = at::empty({bias_grad ? x_.size(1) : 0}, x_.options());
  if (x.numel() == 0) {
    db.zero_();
    return {dx.out, db};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_lrelu_pixel_norm_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    fused_bwd_kernel<scalar_t>(grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv,
                               bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                               dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                               bias_grad ? db.mutable_data_ptr<scalar_t>() : nullptr,
                               Act<acc_t>(scale, slope, gain), eps);
  });
  return {dx.finish(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("bias_lrelu_pixel_norm", &bias_lrelu_pixel_norm_cpu);
  m.impl("bias_lrelu_pixel_norm_bwd", &bias_lrelu_pixel_norm_bwd_cpu);
}

}  // namespace pygan
