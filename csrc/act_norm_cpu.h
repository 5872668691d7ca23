// CPU kernels shared by pixel_norm and bias_lrelu_pixel_norm: both compute, per pixel,
//   a = act(x * scale + bias[c]),  y = a * r,  r = rsqrt(mean_c a^2 + eps)
// with act = gain * leaky_relu (pixel_norm: scale 1, no bias, slope 1 and gain 1, all exact).
// Backward (a recomputed from x, never stored):
//   da = r * g - r^3 * a * mean_c(g * a);  dz = da * act'(a);  dx = scale * dz;  dbias = sum dz
// Work unit: one sample's block of kPixelBlock pixels across all channels, so the reduction pass
// and the write pass read the same cache-resident block (one pass over memory). Within a block,
// loops run along the contiguous dim: channels per pixel for channels_last, pixels per channel
// otherwise.
#pragma once

#include "common.h"

#include <vector>

namespace pygan {
namespace cpu {

// The activation a = gain * lrelu(x * scale + b, slope), with pos = gain, neg = gain * slope.
template <typename acc_t>
struct Act {
  acc_t scale, pos, neg;
  Act(double scale_, double slope, double gain) : scale(scale_), pos(gain), neg(gain * slope) {}
  static Act identity() { return Act(1.0, 1.0, 1.0); }
  acc_t operator()(acc_t x, acc_t b) const { return lrelu_gain<acc_t>(x * scale + b, pos, neg); }
  acc_t slope_of(acc_t a) const { return a > acc_t(0) ? pos : neg; }
};

template <typename scalar_t>
void act_norm_kernel(const scalar_t* x, NCS xv, const scalar_t* bias, scalar_t* y, NCS yv,
                  Act<at::opmath_type<scalar_t>> act, double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  const bool channels_inner = xv.channels_inner();
  const auto bias_of = [bias](int64_t c) { return bias ? static_cast<acc_t>(bias[c]) : acc_t(0); };
  at::parallel_for(0, xv.n * blocks, grain_for(C * kPixelBlock), [&, act, inv_c, e](int64_t begin, int64_t end) {
    const Act<acc_t> f = act;  // task-local: cannot alias the outputs
    acc_t r[kPixelBlock];
    for (int64_t b = begin; b < end; ++b) {
      const int64_t n = b / blocks, s0 = (b % blocks) * kPixelBlock;
      const int64_t len = std::min(kPixelBlock, S - s0);
      const scalar_t* xb = x + n * xv.sn + s0 * xv.ss;
      scalar_t* yb = y + n * yv.sn + s0 * yv.ss;
      if (channels_inner) {   // channels_last: each pixel's C values are contiguous
        for (int64_t i = 0; i < len; ++i) {
          const scalar_t* xp = xb + i * xv.ss;
          scalar_t* yp = yb + i * yv.ss;
          acc_t sum = 0;
          for (int64_t c = 0; c < C; ++c) {
            const acc_t a = f(static_cast<acc_t>(xp[c * xv.sc]), bias_of(c));
            sum += a * a;
          }
          const acc_t ri = acc_t(1) / std::sqrt(sum * inv_c + e);
          for (int64_t c = 0; c < C; ++c) yp[c * yv.sc] = f(static_cast<acc_t>(xp[c * xv.sc]), bias_of(c)) * ri;
        }
        continue;
      }
      std::fill(r, r + len, acc_t(0));
      for (int64_t c = 0; c < C; ++c) {
        const acc_t bc = bias_of(c);
        const scalar_t* xc = xb + c * xv.sc;
        for (int64_t i = 0; i < len; ++i) {
          const acc_t a = f(static_cast<acc_t>(xc[i * xv.ss]), bc);
          r[i] += a * a;
        }
      }
      for (int64_t i = 0; i < len; ++i) r[i] = acc_t(1) / std::sqrt(r[i] * inv_c + e);
      for (int64_t c = 0; c < C; ++c) {
        const acc_t bc = bias_of(c);
        const scalar_t* xc = xb + c * xv.sc;
        scalar_t* yc = yb + c * yv.sc;
        for (int64_t i = 0; i < len; ++i) yc[i * yv.ss] = f(static_cast<acc_t>(xc[i * xv.ss]), bc) * r[i];
      }
    }
  });
}

template <typename scalar_t>
void act_norm_bwd_kernel(const scalar_t* g, NCS gv, const scalar_t* x, NCS xv, const scalar_t* bias,
                      scalar_t* dx, NCS dv, scalar_t* db, Act<at::opmath_type<scalar_t>> act,
                      double eps) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t N = xv.n, C = xv.c, S = xv.s, blocks = ceil_div(S, kPixelBlock);
  const acc_t inv_c = acc_t(1) / acc_t(C), e = static_cast<acc_t>(eps);
  // Blocks are grouped into at most kMaxChunks chunks, each with its own bias partial sums.
  const int64_t units = N * blocks, chunk = ceil_div(units, kMaxChunks), chunks = ceil_div(units, chunk);
  std::vector<acc_t> partial(db ? chunks * C : 0, acc_t(0));
  const bool channels_inner = xv.channels_inner();
  const auto bias_of = [bias](int64_t c) { return bias ? static_cast<acc_t>(bias[c]) : acc_t(0); };
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
        if (channels_inner) {   // channels_last: each pixel's C values are contiguous
          for (int64_t i = 0; i < len; ++i) {
            const scalar_t* xp = xb + i * xv.ss;
            const scalar_t* gp = gb + i * gv.ss;
            scalar_t* dp = db_ + i * dv.ss;
            acc_t aa = 0, ga = 0;
            for (int64_t c = 0; c < C; ++c) {
              const acc_t a = f(static_cast<acc_t>(xp[c * xv.sc]), bias_of(c));
              aa += a * a;
              ga += static_cast<acc_t>(gp[c * gv.sc]) * a;
            }
            const acc_t ri = acc_t(1) / std::sqrt(aa * inv_c + e), k3i = ri * ri * ri * ga * inv_c;
            for (int64_t c = 0; c < C; ++c) {
              const acc_t a = f(static_cast<acc_t>(xp[c * xv.sc]), bias_of(c));
              const acc_t dz = (ri * static_cast<acc_t>(gp[c * gv.sc]) - k3i * a) * f.slope_of(a);
              dp[c * dv.sc] = dz * f.scale;
              if (part) part[c] += dz;
            }
          }
          continue;
        }
        std::fill(r, r + len, acc_t(0));
        std::fill(k3, k3 + len, acc_t(0));
        for (int64_t c = 0; c < C; ++c) {
          const acc_t bc = bias_of(c);
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
          const acc_t bc = bias_of(c);
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

}  // namespace cpu
}  // namespace pygan
