// Minibatch standard deviation, CUDA (maths as minibatch_std.cpp: D = G - 1 when unbiased, else G,
// divides the sum of squared deviations; the mean divides by G). The per-(group, channel)
// sums of sigma over pixels and the backward's per-element update are kernels; the small
// reductions over channel groups and samples, and the replication of the statistic, are ATen ops
// on the current stream (deterministic, no synchronisation).
#include <ATen/ops/arange.h>

#include "cuda_utils.cuh"

namespace pygan {
namespace {

// sums[m * C + c] = sum_s sigma(m, c, s), one block per (m, c).
template <typename T, typename acc_t>
__global__ void sigma_sums(const T* __restrict__ x, NCS xv, int64_t G, int64_t D, acc_t eps,
                           acc_t* __restrict__ sums) {
  __shared__ acc_t warp_totals[cuda::kThreads / 32];
  const int64_t M = xv.n / G, C = xv.c;
  for (int64_t mc = blockIdx.x; mc < M * C; mc += gridDim.x) {
    const int64_t m = mc / C, c = mc % C;
    const T* base = x + m * xv.sn + c * xv.sc;
    acc_t total = 0;
    for (int64_t s = threadIdx.x; s < xv.s; s += blockDim.x) {
      acc_t mean = 0;
      for (int64_t g = 0; g < G; ++g) mean += static_cast<acc_t>(base[g * M * xv.sn + s * xv.ss]);
      mean /= acc_t(G);
      acc_t var = 0;
      for (int64_t g = 0; g < G; ++g) {
        const acc_t d = static_cast<acc_t>(base[g * M * xv.sn + s * xv.ss]) - mean;
        var += d * d;
      }
      total += cuda::sqrt_acc(var / acc_t(D) + eps);
    }
    total = cuda::warp_sum(total);
    if ((threadIdx.x & 31) == 0) warp_totals[threadIdx.x >> 5] = total;
    __syncthreads();
    if (threadIdx.x == 0) {
      acc_t t = 0;
      for (int w = 0; w < cuda::kThreads / 32; ++w) t += warp_totals[w];
      sums[mc] = t;
    }
    __syncthreads();
  }
}

// dx[g*M+m, c, s] = grad[g*M+m, c, s] + k[m, c / Cf] / D * (x - mean) / sigma, one thread per (m, c, s).
template <typename T, typename acc_t>
__global__ void minibatch_std_bwd_kernel(const T* __restrict__ grad, NCS gv, const T* __restrict__ x, NCS xv,
                                         T* __restrict__ dx, NCS dv, int64_t G, int64_t D, int64_t Cf,
                                         const acc_t* __restrict__ k, int64_t F, acc_t eps) {
  const int64_t M = xv.n / G, C = xv.c, S = xv.s, total = M * C * S;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t s = i % S, c = (i / S) % C, m = i / (S * C);
    acc_t mean = 0;
    for (int64_t g = 0; g < G; ++g) mean += static_cast<acc_t>(x[(g * M + m) * xv.sn + c * xv.sc + s * xv.ss]);
    mean /= acc_t(G);
    acc_t var = 0;
    for (int64_t g = 0; g < G; ++g) {
      const acc_t d = static_cast<acc_t>(x[(g * M + m) * xv.sn + c * xv.sc + s * xv.ss]) - mean;
      var += d * d;
    }
    const acc_t coef = k[m * F + c / Cf] / (acc_t(D) * cuda::sqrt_acc(var / acc_t(D) + eps));
    for (int64_t g = 0; g < G; ++g) {
      const int64_t n = g * M + m;
      const acc_t xv_ = static_cast<acc_t>(x[n * xv.sn + c * xv.sc + s * xv.ss]);
      dx[n * dv.sn + c * dv.sc + s * dv.ss] =
          static_cast<T>(static_cast<acc_t>(grad[n * gv.sn + c * gv.sc + s * gv.ss]) + coef * (xv_ - mean));
    }
  }
}

// Checks the arguments; returns D, the divisor of the sum of squared deviations.
int64_t check_args(const at::Tensor& x, int64_t G, int64_t F, bool unbiased, const char* op) {
  TORCH_CHECK(x.dim() == 4 && x.is_floating_point(), "pygan::", op, ": x must be a floating-point (N, C, H, W) tensor, got ",
              x.sizes());
  TORCH_CHECK(G >= 1 && x.size(0) % G == 0, "pygan::", op, ": N=", x.size(0), " is not divisible by group_size=", G);
  TORCH_CHECK(F >= 1 && x.size(1) % F == 0, "pygan::", op, ": C=", x.size(1), " is not divisible by num_channels=", F);
  TORCH_CHECK_VALUE(!unbiased || G >= 2, "pygan::", op, ": unbiased=True needs group_size >= 2, got group_size=", G,
                    " (the unbiased variance of one sample is undefined)");
  return unbiased ? G - 1 : G;
}

at::Tensor minibatch_std_cuda(const at::Tensor& x_, int64_t G, int64_t F, double eps, bool unbiased) {
  const int64_t D = check_args(x_, G, F, unbiased, "minibatch_std");
  cuda::check_same_device("minibatch_std", {{"x", &x_}});
  const c10::cuda::CUDAGuard guard(x_.device());
  const int64_t N = x_.size(0), C = x_.size(1), H = x_.size(2), W = x_.size(3), M = N / G;
  at::Tensor out = empty_in_layout_of({N, C + F, H, W}, x_);
  out.narrow(1, 0, C).copy_(x_);
  if (out.numel() == 0) return out;
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  const auto acc = at::toOpMathType(x.scalar_type());
  at::Tensor sums = at::empty({M, F, C / F}, x.options().dtype(acc));
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "minibatch_std_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    sigma_sums<scalar_t, acc_t><<<cuda::blocks_for(M * C, 1), cuda::kThreads, 0, cuda::stream()>>>(
        x.const_data_ptr<scalar_t>(), xv, G, D, static_cast<acc_t>(eps), sums.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // s[m, f] = mean over the group's channels and pixels; sample n takes s[n mod M]
  const at::Tensor stat = sums.sum(2).div_(static_cast<double>(C / F * H * W)).to(x.scalar_type());
  const at::Tensor rows = at::arange(N, x.options().dtype(at::kLong)).remainder_(M);
  out.narrow(1, C, F).copy_(stat.index_select(0, rows).view({N, F, 1, 1}).expand({N, F, H, W}));
  return out;
}

at::Tensor minibatch_std_bwd_cuda(const at::Tensor& grad_, const at::Tensor& x_, int64_t G, int64_t F, double eps,
                                  bool unbiased) {
  const int64_t D = check_args(x_, G, F, unbiased, "minibatch_std_bwd");
  const int64_t N = x_.size(0), C = x_.size(1), H = x_.size(2), W = x_.size(3), M = N / G;
  TORCH_CHECK(grad_.dim() == 4 && grad_.size(0) == N && grad_.size(1) == C + F && grad_.size(2) == H &&
                  grad_.size(3) == W && grad_.scalar_type() == x_.scalar_type(),
              "pygan::minibatch_std_bwd: grad must be (N, C + num_channels, H, W) with x's dtype");
  cuda::check_same_device("minibatch_std_bwd", {{"grad", &grad_}, {"x", &x_}});
  const c10::cuda::CUDAGuard guard(x_.device());
  NCS xv, gv;
  const at::Tensor x = ncs_input(x_, xv), grad = ncs_input(grad_, gv);
  NCSOutput dx(at::empty_like(x_));
  if (x.numel() == 0) return dx.out;
  const auto acc = at::toOpMathType(x.scalar_type());
  // k[m, f] = sum over the group's samples and pixels of grad[:, C + f], / (Cf * H * W)
  const at::Tensor k = grad_.narrow(1, C, F).sum({2, 3}, false, acc).view({G, M, F}).sum(0)
                           .div_(static_cast<double>(C / F * H * W)).contiguous();
  PYGAN_DISPATCH_FLOATING(x.scalar_type(), "minibatch_std_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    minibatch_std_bwd_kernel<scalar_t, acc_t><<<cuda::blocks_for(M * C * xv.s), cuda::kThreads, 0, cuda::stream()>>>(
        grad.const_data_ptr<scalar_t>(), gv, x.const_data_ptr<scalar_t>(), xv, dx.work.mutable_data_ptr<scalar_t>(), dx.v,
        G, D, C / F, k.const_data_ptr<acc_t>(), F, static_cast<acc_t>(eps));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dx.finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("minibatch_std", &minibatch_std_cuda);
  m.impl("minibatch_std_bwd", &minibatch_std_bwd_cuda);
}

}  // namespace pygan
