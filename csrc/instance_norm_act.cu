// Instance norm + activation (+ residual), CUDA (maths as instance_norm_act.cpp):
//   mu = mean_s x,  m2 = sum_s (x - mu)^2,  r = 1 / sqrt(m2 / S + eps),  xh = (x - mu) * r
//   y = act(xh * w[c] + b[c]) + residual,   act(z) = z * (z > 0 ? 1 : slope)
//   dx = w r (dz - mean dz - xh mean(dz xh)),  dw = sum_{n,s} dz xh,  db = sum_{n,s} dz
//
// Blocks of 256 threads = LANES channel lanes x ROWS pixel rows; each thread owns one channel of
// the unit and every ROWS-th pixel of it, so loads coalesce along the innermost dim:
//   planes (NCHW-like, pixels innermost): LANES = 1, ROWS = 256 (a block walks one plane);
//   channels_last (channels innermost): LANES = 32, ROWS = 8 (a warp reads 32 adjacent channels).
// A unit is (n, channel group, chunk of pixels). When a plane fits in one chunk (S <= 8192 pixels
// for planes, <= 256 for channels_last) one block computes the statistics (the mean, then the
// squares about it) and writes the outputs in the same launch: one pass over memory, the re-reads
// hit L1/L2. Larger planes (256x256 at C = 64) are split: a stats kernel writes each chunk's
// (mean, sum of squares about it), and the writing kernel merges a plane's chunks in a fixed order
// with Chan's formula (in two levels: groups of kMergeGroup chunks, then the groups); the backward
// adds a kernel for the chunk sums of dz and dz * xh, added up in the same two levels. Row sums
// meet in a fixed-order tree in shared memory. No atomics: the same bits on every run; nothing
// synchronises with the host.
#include <ATen/ops/zeros.h>

#include "cuda_utils.cuh"
#include "instance_norm_act.h"

namespace pygan {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kPlaneChunk = 8192;
constexpr int64_t kClChunk = 256;

enum Phase { kFused = 0, kPartial = 1, kApply = 2 };

struct Units {
  int64_t C, S, cgroups, K, chunk, count;
};

template <int LANES>
struct Coords {
  int64_t n, c, k, s_lo, s_hi;
  bool valid;
  __device__ Coords(const Units& u, int64_t unit) {
    k = unit % u.K;
    const int64_t t = unit / u.K;
    n = t / u.cgroups;
    c = (t % u.cgroups) * LANES + threadIdx.x % LANES;
    valid = c < u.C;
    s_lo = k * u.chunk;
    s_hi = s_lo + u.chunk < u.S ? s_lo + u.chunk : u.S;
  }
};

// Sum of v over the ROWS rows of the caller's lane, in a fixed tree order; every thread gets it.
template <int LANES, typename acc_t>
__device__ __forceinline__ acc_t sum_rows(acc_t v, acc_t* red) {
  constexpr int ROWS = kBlock / LANES;
  const int tid = threadIdx.x, row = tid / LANES;
  red[tid] = v;
  __syncthreads();
#pragma unroll
  for (int stride = ROWS / 2; stride > 0; stride >>= 1) {
    if (row < stride) red[tid] += red[tid + stride * LANES];
    __syncthreads();
  }
  const acc_t out = red[tid % LANES];
  __syncthreads();
  return out;
}

// (mean, sum of squares about it) of pixels [s_lo, s_hi) of the plane at p.
template <int LANES, typename T, typename acc_t>
__device__ void moments(const T* __restrict__ p, int64_t ss, int64_t s_lo, int64_t s_hi, bool valid, acc_t* red,
                        acc_t& mean, acc_t& m2) {
  constexpr int ROWS = kBlock / LANES;
  const int row = threadIdx.x / LANES;
  acc_t sum = 0;
  if (valid) {
    for (int64_t s = s_lo + row; s < s_hi; s += ROWS) sum += static_cast<acc_t>(p[s * ss]);
  }
  mean = sum_rows<LANES>(sum, red) / acc_t(s_hi - s_lo);
  acc_t sq = 0;
  if (valid) {
    for (int64_t s = s_lo + row; s < s_hi; s += ROWS) {
      const acc_t d = static_cast<acc_t>(p[s * ss]) - mean;
      sq += d * d;
    }
  }
  m2 = sum_rows<LANES>(sq, red);
}

// Chunks per group of the two-level merges below: a 256x256 channels_last plane has 256 chunks,
// and merged one by one its float32 output error was 2.4x eager's largest (the Triton kernel's,
// the same merge, under the interpreter); in groups no running mean takes more than
// max(16, K / 16) merges.
constexpr int64_t kMergeGroup = 16;

// (mean, m2, count) merged with a part's (mb, qb, nb) (Chan et al.).
template <typename acc_t>
__device__ __forceinline__ void chan_merge(acc_t& mean, acc_t& m2, acc_t& count, acc_t mb, acc_t qb, acc_t nb) {
  const acc_t total = count + nb, delta = mb - mean;
  mean += delta * (nb / total);
  m2 += qb + delta * delta * (count * nb / total);
  count = total;
}

// A plane's (mean, m2) from its K chunks' partials (in chunk order, in groups of kMergeGroup).
template <typename acc_t>
__device__ void merged(const acc_t* __restrict__ pmean, const acc_t* __restrict__ pm2, int64_t plane, const Units& u,
                       acc_t& mean, acc_t& m2) {
  mean = 0;
  m2 = 0;
  acc_t count = 0;
  for (int64_t k0 = 0; k0 < u.K; k0 += kMergeGroup) {
    const int64_t k1 = k0 + kMergeGroup < u.K ? k0 + kMergeGroup : u.K;
    acc_t g_mean = 0, g_m2 = 0, g_count = 0;
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t lo = k * u.chunk, hi = lo + u.chunk < u.S ? lo + u.chunk : u.S;
      chan_merge(g_mean, g_m2, g_count, pmean[plane * u.K + k], pm2[plane * u.K + k], acc_t(hi - lo));
    }
    chan_merge(mean, m2, count, g_mean, g_m2, g_count);
  }
}

template <int LANES, typename T, typename acc_t>
__global__ void stats_kernel(const T* __restrict__ x, NCS xv, acc_t* __restrict__ pmean, acc_t* __restrict__ pm2,
                             Units u) {
  __shared__ acc_t red[kBlock];
  for (int64_t unit = blockIdx.x; unit < u.count; unit += gridDim.x) {
    const Coords<LANES> q(u, unit);
    const T* p = x + q.n * xv.sn + (q.valid ? q.c : 0) * xv.sc;
    acc_t mean, m2;
    moments<LANES>(p, xv.ss, q.s_lo, q.s_hi, q.valid, red, mean, m2);
    if (q.valid && threadIdx.x < LANES) {
      const int64_t plane = q.n * u.C + q.c;
      pmean[plane * u.K + q.k] = mean;
      pm2[plane * u.K + q.k] = m2;
    }
  }
}

template <int LANES, bool FUSED, typename T, typename acc_t>
__device__ __forceinline__ void plane_stats(const T* p, int64_t ss, const Coords<LANES>& q, const Units& u,
                                            const acc_t* pmean, const acc_t* pm2, acc_t eps, acc_t* red,
                                            acc_t& mean, acc_t& r) {
  acc_t m2;
  if (FUSED) {
    moments<LANES>(p, ss, int64_t{0}, u.S, q.valid, red, mean, m2);
  } else {
    mean = m2 = 0;
    if (q.valid) merged(pmean, pm2, q.n * u.C + q.c, u, mean, m2);
  }
  r = acc_t(1) / cuda::sqrt_acc(m2 / acc_t(u.S) + eps);   // IEEE sqrt and division, as the CPU kernel
}

template <int LANES, bool FUSED, typename T, typename acc_t>
__global__ void fwd_kernel(const T* __restrict__ x, NCS xv, const T* __restrict__ weight, const T* __restrict__ bias,
                           const T* __restrict__ res, NCS rv, T* __restrict__ y, NCS yv,
                           const acc_t* __restrict__ pmean, const acc_t* __restrict__ pm2, acc_t slope, acc_t eps,
                           Units u) {
  __shared__ acc_t red[kBlock];
  constexpr int ROWS = kBlock / LANES;
  const int row = threadIdx.x / LANES;
  for (int64_t unit = blockIdx.x; unit < u.count; unit += gridDim.x) {
    const Coords<LANES> q(u, unit);
    const int64_t c = q.valid ? q.c : 0;
    const T* xp = x + q.n * xv.sn + c * xv.sc;
    acc_t mean, r;
    plane_stats<LANES, FUSED>(xp, xv.ss, q, u, pmean, pm2, eps, red, mean, r);
    if (!q.valid) continue;   // after the block-wide sums: no barrier follows in this unit
    const acc_t a = r * (weight ? static_cast<acc_t>(weight[c]) : acc_t(1));
    const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
    T* yp = y + q.n * yv.sn + c * yv.sc;
    const T* rp = res ? res + q.n * rv.sn + c * rv.sc : nullptr;
    for (int64_t s = q.s_lo + row; s < q.s_hi; s += ROWS) {
      const acc_t z = (static_cast<acc_t>(xp[s * xv.ss]) - mean) * a + b;
      acc_t v = z * (z > acc_t(0) ? acc_t(1) : slope);
      if (rp) v += static_cast<acc_t>(rp[s * rv.ss]);
      yp[s * yv.ss] = static_cast<T>(v);
    }
  }
}

template <int LANES, int PHASE, typename T, typename acc_t>
__global__ void bwd_kernel(const T* __restrict__ g, NCS gv, const T* __restrict__ x, NCS xv,
                           const T* __restrict__ weight, const T* __restrict__ bias, T* __restrict__ d, NCS dv,
                           const acc_t* __restrict__ pmean, const acc_t* __restrict__ pm2, acc_t* __restrict__ t1,
                           acc_t* __restrict__ t2, acc_t slope, acc_t eps, Units u) {
  __shared__ acc_t red[kBlock];
  constexpr int ROWS = kBlock / LANES;
  const int row = threadIdx.x / LANES;
  for (int64_t unit = blockIdx.x; unit < u.count; unit += gridDim.x) {
    const Coords<LANES> q(u, unit);
    const int64_t c = q.valid ? q.c : 0, plane = q.n * u.C + c;
    const T* xp = x + q.n * xv.sn + c * xv.sc;
    const T* gp = g + q.n * gv.sn + c * gv.sc;
    acc_t mean, r;
    plane_stats<LANES, PHASE == kFused>(xp, xv.ss, q, u, pmean, pm2, eps, red, mean, r);
    const acc_t w = weight ? static_cast<acc_t>(weight[c]) : acc_t(1);
    const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
    acc_t s1 = 0, s2 = 0;
    if (PHASE == kApply) {
      if (q.valid) {
        for (int64_t k0 = 0; k0 < u.K; k0 += kMergeGroup) {   // two levels, as the statistics
          const int64_t k1 = k0 + kMergeGroup < u.K ? k0 + kMergeGroup : u.K;
          acc_t g1 = 0, g2 = 0;
          for (int64_t k = k0; k < k1; ++k) {
            g1 += t1[plane * u.K + k];
            g2 += t2[plane * u.K + k];
          }
          s1 += g1;
          s2 += g2;
        }
      }
    } else {
      if (q.valid) {
        for (int64_t s = q.s_lo + row; s < q.s_hi; s += ROWS) {
          const acc_t xh = (static_cast<acc_t>(xp[s * xv.ss]) - mean) * r;
          const acc_t z = xh * w + b;
          const acc_t dz = static_cast<acc_t>(gp[s * gv.ss]) * (z > acc_t(0) ? acc_t(1) : slope);
          s1 += dz;
          s2 += dz * xh;
        }
      }
      s1 = sum_rows<LANES>(s1, red);
      s2 = sum_rows<LANES>(s2, red);
      if (q.valid && threadIdx.x < LANES) {
        t1[plane * u.K + q.k] = s1;
        t2[plane * u.K + q.k] = s2;
      }
    }
    if (PHASE == kPartial || !q.valid) continue;
    const acc_t a = w * r, k1 = a * s1 / acc_t(u.S), k2 = a * s2 / acc_t(u.S);
    T* dp = d + q.n * dv.sn + c * dv.sc;
    for (int64_t s = q.s_lo + row; s < q.s_hi; s += ROWS) {
      const acc_t xh = (static_cast<acc_t>(xp[s * xv.ss]) - mean) * r;
      const acc_t z = xh * w + b;
      const acc_t dz = static_cast<acc_t>(gp[s * gv.ss]) * (z > acc_t(0) ? acc_t(1) : slope);
      dp[s * dv.ss] = static_cast<T>(a * dz - k1 - xh * k2);
    }
  }
}

Units plan(const NCS& v, bool cl) {
  Units u;
  u.C = v.c;
  u.S = v.s;
  const int64_t lanes = cl ? 32 : 1, max_chunk = cl ? kClChunk : kPlaneChunk;
  u.cgroups = ceil_div(v.c, lanes);
  u.chunk = v.s <= max_chunk ? v.s : max_chunk;
  u.K = ceil_div(v.s, u.chunk);
  u.count = v.n * u.cgroups * u.K;
  return u;
}

std::optional<at::Tensor> contiguous_opt(const std::optional<at::Tensor>& t) {
  return t.has_value() ? std::optional<at::Tensor>(t->contiguous()) : std::nullopt;
}

template <typename T>
const T* ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->const_data_ptr<T>() : nullptr;
}

at::Tensor instance_norm_act_cuda(const at::Tensor& x_, const std::optional<at::Tensor>& weight_,
                                  const std::optional<at::Tensor>& bias_, const std::optional<at::Tensor>& residual_,
                                  double slope_, double eps_) {
  check_instance_norm_act_inputs(x_, weight_, bias_, "instance_norm_act");
  if (residual_.has_value()) {
    TORCH_CHECK(residual_->sizes() == x_.sizes() && residual_->scalar_type() == x_.scalar_type() &&
                    residual_->device() == x_.device(),
                "pygan::instance_norm_act: residual must match x in shape, dtype and device");
  }
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS xv, rv;
  const at::Tensor x = ncs_input(x_, xv);
  const auto weight = contiguous_opt(weight_), bias = contiguous_opt(bias_);
  at::Tensor residual;
  if (residual_.has_value()) residual = ncs_input(*residual_, rv);
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  const bool cl = xv.channels_inner();
  const Units u = plan(xv, cl);
  const auto acc = at::toOpMathType(x.scalar_type());
  at::Tensor pmean, pm2;
  if (u.K > 1) {
    pmean = at::empty({xv.n * u.C * u.K}, x.options().dtype(acc));
    pm2 = at::empty_like(pmean);
  }
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "instance_norm_act_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* wp = ptr_or_null<scalar_t>(weight);
    const scalar_t* bp = ptr_or_null<scalar_t>(bias);
    const scalar_t* rp = residual.defined() ? residual.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.work.mutable_data_ptr<scalar_t>();
    acc_t* mp = u.K > 1 ? pmean.mutable_data_ptr<acc_t>() : nullptr;
    acc_t* qp = u.K > 1 ? pm2.mutable_data_ptr<acc_t>() : nullptr;
    const acc_t slope = static_cast<acc_t>(slope_), eps = static_cast<acc_t>(eps_);
    const unsigned grid = cuda::blocks_for(u.count, 1);
    const auto launch = [&](auto lanes) {
      constexpr int L = decltype(lanes)::value;
      if (u.K == 1) {
        fwd_kernel<L, true, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(
            xp, xv, wp, bp, rp, rv, yp, y.v, mp, qp, slope, eps, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        stats_kernel<L, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(xp, xv, mp, qp, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        fwd_kernel<L, false, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(
            xp, xv, wp, bp, rp, rv, yp, y.v, mp, qp, slope, eps, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    };
    if (cl) {
      launch(std::integral_constant<int, 32>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_bwd_cuda(
    const at::Tensor& grad_, const at::Tensor& x_, const std::optional<at::Tensor>& weight_,
    const std::optional<at::Tensor>& bias_, double slope_, double eps_) {
  check_instance_norm_act_inputs(x_, weight_, bias_, "instance_norm_act_bwd");
  TORCH_CHECK(grad_.sizes() == x_.sizes() && grad_.scalar_type() == x_.scalar_type() && grad_.device() == x_.device(),
              "pygan::instance_norm_act_bwd: grad must match x in shape, dtype and device");
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS gv, xv;
  const at::Tensor grad = ncs_input(grad_, gv), x = ncs_input(x_, xv);
  const auto weight = contiguous_opt(weight_), bias = contiguous_opt(bias_);
  NCSOutput dx(at::empty_like(x_));
  const int64_t C = x_.size(1);
  if (x.numel() == 0) return {dx.out, at::zeros({C}, x_.options()), at::zeros({C}, x_.options())};
  const bool cl = xv.channels_inner();
  const Units u = plan(xv, cl);
  const auto acc = at::toOpMathType(x.scalar_type());
  at::Tensor t1 = at::empty({xv.n, C, u.K}, x.options().dtype(acc)), t2 = at::empty_like(t1);
  at::Tensor pmean, pm2;
  if (u.K > 1) {
    pmean = at::empty({xv.n * C * u.K}, x.options().dtype(acc));
    pm2 = at::empty_like(pmean);
  }
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "instance_norm_act_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* wp = ptr_or_null<scalar_t>(weight);
    const scalar_t* bp = ptr_or_null<scalar_t>(bias);
    scalar_t* dp = dx.work.mutable_data_ptr<scalar_t>();
    acc_t* mp = u.K > 1 ? pmean.mutable_data_ptr<acc_t>() : nullptr;
    acc_t* qp = u.K > 1 ? pm2.mutable_data_ptr<acc_t>() : nullptr;
    acc_t* t1p = t1.mutable_data_ptr<acc_t>();
    acc_t* t2p = t2.mutable_data_ptr<acc_t>();
    const acc_t slope = static_cast<acc_t>(slope_), eps = static_cast<acc_t>(eps_);
    const unsigned grid = cuda::blocks_for(u.count, 1);
    const auto launch = [&](auto lanes) {
      constexpr int L = decltype(lanes)::value;
      if (u.K == 1) {
        bwd_kernel<L, kFused, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(
            gp, gv, xp, xv, wp, bp, dp, dx.v, mp, qp, t1p, t2p, slope, eps, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        stats_kernel<L, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(xp, xv, mp, qp, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        bwd_kernel<L, kPartial, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(
            gp, gv, xp, xv, wp, bp, dp, dx.v, mp, qp, t1p, t2p, slope, eps, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        bwd_kernel<L, kApply, scalar_t, acc_t><<<grid, kBlock, 0, cuda::stream()>>>(
            gp, gv, xp, xv, wp, bp, dp, dx.v, mp, qp, t1p, t2p, slope, eps, u);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    };
    if (cl) {
      launch(std::integral_constant<int, 32>{});
    } else {
      launch(std::integral_constant<int, 1>{});
    }
  });
  // dw = sum_{n, k} t2, db = sum_{n, k} t1: fixed-order ATen reductions on the current stream
  at::Tensor dw = t2.sum({0, 2}).to(x_.scalar_type()), db = t1.sum({0, 2}).to(x_.scalar_type());
  return {dx.finish(), dw, db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("instance_norm_act", &instance_norm_act_cuda);
  m.impl("instance_norm_act_bwd", &instance_norm_act_bwd_cuda);
}

}  // namespace pygan
