// Pixel norm, CPU.  y = x * r,  r = rsqrt(mean_c x^2 + eps)
// Backward:         dx = r * g - r^3 * x * mean_c(g * x)
// Work unit: one sample's block of kPixelBlock pixels across all channels, so the reduction pass
// and the write pass read the same cache-resident block (one pass over memory).
#include "common.h"

namespace pygan {
namespace {

template <typename scalar_t>
void pixel_norm_kernel(const scalar_t* x, NCS xv, scalar_t* y, NCS yv, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  at::parallel_for(0, xv.n * blocks, grain_for(C * kPixelBlock), [&, inv_c, e](int64_t begin, int64_t end) {
    acc_t r[kPixelBlock];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t n = b / blocks, s0 = (b % blocks) * kPixelBlock;
      const int64_t len = std::min(kPixelBlock, S - s0);
      const scalar_t* xb = x + n * xv.sn + s0 * xv.ss;
      scalar_t* yb = y + n * yv.sn + s0 * yv.ss;
      std::fill(r, r + len, acc_t(0));
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* xc = xb + c * xv.sc;
        for (int64_t i = 0; i < len; ++i) {
          const acc_t v = xc[i * xv.ss];
          r[i] += v * v;
        }
      }
      for (int64_t i = 0; i < len; ++i) r[i] = acc_t(1) / std::sqrt(r[i] * inv_c + e);
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* xc = xb + c * xv.sc;
        scalar_t* yc = yb + c * yv.sc;
        for (int64_t i = 0; i < len; ++i) yc[i * yv.ss] = static_cast<acc_t>(xc[i * xv.ss]) * r[i];
      }
    }
  });
}

template <typename scalar_t>
void pixel_norm_bwd_kernel(const scalar_t* g, NCS gv, const scalar_t* x, NCS xv, scalar_t* dx,
                           NCS dv, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  at::parallel_for(0, xv.n * blocks, grain_for(C * kPixelBlock), [&, inv_c, e](int64_t begin, int64_t end) {
    acc_t sxx[kPixelBlock], sgx[kPixelBlock];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t n = b / blocks, s0 = (b % blocks) * kPixelBlock;
      const int64_t len = std::min(kPixelBlock, S - s0);
      const scalar_t* xb = x + n * xv.sn + s0 * xv.ss;
      const scalar_t* gb = g + n * gv.sn + s0 * gv.ss;
      scalar_t* db = dx + n * dv.sn + s0 * dv.ss;
      std::fill(sxx, sxx + len, acc_t(0));
      std::fill(sgx, sgx + len, acc_t(0));
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* xc = xb + c * xv.sc;
        const scalar_t* gc = gb + c * gv.sc;
        for (int64_t i = 0; i < len; ++i) {
          const acc_t xi = xc[i * xv.ss], gi = gc[i * gv.ss];
          sxx[i] += xi * xi;
          sgx[i] += gi * xi;
        }
      }
      // reuse the two buffers: sxx <- r, sgx <- r^3 * mean(g x)
      for (int64_t i = 0; i < len; ++i) {
        const acc_t r = acc_t(1) / std::sqrt(sxx[i] * inv_c + e);
        sxx[i] = r;
        sgx[i] = r * r * r * sgx[i] * inv_c;
      }
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* xc = xb + c * xv.sc;
        const scalar_t* gc = gb + c * gv.sc;
        scalar_t* dc = db + c * dv.sc;
        for (int64_t i = 0; i < len; ++i) {
          dc[i * dv.ss] = sxx[i] * static_cast<acc_t>(gc[i * gv.ss]) -
                          sgx[i] * static_cast<acc_t>(xc[i * xv.ss]);
        }
      }
    }
  });
}

void check_pixel_norm_input(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() >= 2, "pygan::pixel_norm: ", name, " must be (N, C, *spatial), got ",
              x.sizes());
  TORCH_CHECK(x.is_floating_point(), "pygan::pixel_norm: ", name, " must be floating point");
}

at::Tensor pixel_norm_cpu(const at::Tensor& x_, double eps) {
  check_pixel_norm_input(x_, "x");
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_norm", [&] {
    pixel_norm_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), xv,
                                y.work.mutable_data_ptr<scalar_t>(), y.v, eps);
  });
  return y.finish();
}

at::Tensor pixel_norm_bwd_cpu(const at::Tensor& grad_, const at::Tensor& x_, double eps) {
  check_pixel_norm_input(x_, "x");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type(),
              "pygan::pixel_norm_bwd: grad must match x in shape and dtype");
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  NCSOutput dx(at::empty_like(grad_));
  if (x.numel() == 0) return dx.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pixel_norm_bwd", [&] {
    pixel_norm_bwd_kernel<scalar_t>(grad.const_data_ptr<scalar_t>(), gv,
                                    x.const_data_ptr<scalar_t>(), xv,
                                    dx.work.mutable_data_ptr<scalar_t>(), dx.v, eps);
  });
  return dx.finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("pixel_norm", &pixel_norm_cpu);
  m.impl("pixel_norm_bwd", &pixel_norm_bwd_cpu);
}

}  // namespace pygan
