// Gradient-penalty norm term, CUDA (maths as gradient_penalty.cpp). Rows are read in memory order
// (any dense layout with the batch dim outermost), one block per fixed-size chunk of a row; the
// chunk sums, the norms and the loss combine in ATen in a fixed order (deterministic) on the
// current stream, and the backward reads grad_loss from device memory: nothing synchronises.
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include "cuda_utils.cuh"

namespace pygan {
namespace {

using cuda::Pack;
using cuda::pack_size;

constexpr int64_t kChunk = 1 << 15;  // elements per block: a multiple of every pack size

bool batch_outer_dense(const at::Tensor& t) {
  return t.is_non_overlapping_and_dense() && (t.size(0) == 1 || t.stride(0) == t.numel() / t.size(0));
}

at::Tensor as_rows(const at::Tensor& t) { return batch_outer_dense(t) ? t : t.contiguous(); }

// Whole rows can be read in 16-byte packs: aligned base and rows a multiple of the pack size.
template <typename T>
bool rows_packable(const at::Tensor& t, int64_t K) {
  return cuda::aligned16(t.const_data_ptr()) && K % pack_size<T>() == 0;
}

// partial[n * chunks + k] = sum of squares of chunk k of row n.
template <typename T, typename acc_t>
__global__ void chunk_sumsq(const T* __restrict__ g, int64_t K, int64_t chunks, int64_t units, bool packed,
                            acc_t* __restrict__ partial) {
  __shared__ acc_t warp_totals[cuda::kThreads / 32];
  constexpr int V = pack_size<T>();
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int64_t n = u / chunks, k0 = (u % chunks) * kChunk, k1 = std::min(K, k0 + kChunk);
    const T* row = g + n * K;
    acc_t sum = 0;
    if (packed) {
      for (int64_t p = k0 / V + threadIdx.x; p < k1 / V; p += blockDim.x) {
        const Pack<T> v = reinterpret_cast<const Pack<T>*>(row)[p];
#pragma unroll
        for (int j = 0; j < V; ++j) sum += static_cast<acc_t>(v.v[j]) * static_cast<acc_t>(v.v[j]);
      }
    } else {
      for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
        const acc_t v = row[k];
        sum += v * v;
      }
    }
    sum = cuda::warp_sum(sum);
    if ((threadIdx.x & 31) == 0) warp_totals[threadIdx.x >> 5] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
      acc_t t = 0;
      for (int w = 0; w < cuda::kThreads / 32; ++w) t += warp_totals[w];
      partial[u] = t;
    }
    __syncthreads();
  }
}

// d[n * K + k] = coef[n] * g[n * K + k]
template <typename T, typename acc_t>
__global__ void scale_rows(const T* __restrict__ g, const acc_t* __restrict__ coef, T* __restrict__ d, int64_t K,
                           int64_t numel, bool packed) {
  constexpr int V = pack_size<T>();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (packed) {
    for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < numel / V; p += stride) {
      const acc_t c = coef[(p * V) / K];
      const Pack<T> in = reinterpret_cast<const Pack<T>*>(g)[p];
      Pack<T> out;
#pragma unroll
      for (int j = 0; j < V; ++j) out.v[j] = static_cast<T>(c * static_cast<acc_t>(in.v[j]));
      reinterpret_cast<Pack<T>*>(d)[p] = out;
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
      d[i] = static_cast<T>(coef[i / K] * static_cast<acc_t>(g[i]));
    }
  }
}

std::tuple<at::Tensor, at::Tensor> gradient_penalty_cuda(const at::Tensor& grad_, double target) {
  TORCH_CHECK(grad_.dim() >= 1 && grad_.size(0) >= 1 && grad_.is_floating_point(),
              "pygan::gradient_penalty: grad must be a floating-point (N, ...) tensor with N >= 1");
  cuda::check_same_device("gradient_penalty", {{"grad", &grad_}});
  const c10::cuda::CUDAGuard guard(grad_.device());
  const at::Tensor grad = as_rows(grad_);
  const int64_t N = grad.size(0), K = grad.numel() / N, chunks = std::max<int64_t>(1, ceil_div(K, kChunk));
  const auto acc = at::toOpMathType(grad.scalar_type());
  at::Tensor partial = at::zeros({N, chunks}, grad.options().dtype(acc));
  if (K > 0) {
    PYGAN_DISPATCH_FLOATING(grad.scalar_type(), "gradient_penalty_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      chunk_sumsq<scalar_t, acc_t><<<cuda::blocks_for(N * chunks, 1), cuda::kThreads, 0, cuda::stream()>>>(
          grad.const_data_ptr<scalar_t>(), K, chunks, N * chunks, rows_packable<scalar_t>(grad, K),
          partial.mutable_data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  at::Tensor norms = partial.sum(1).sqrt_();
  at::Tensor loss = norms.sub(target).square_().mean().to(grad.scalar_type());
  return {loss, norms};
}

at::Tensor gradient_penalty_bwd_cuda(const at::Tensor& grad_loss, const at::Tensor& grad_, const at::Tensor& norms,
                                     double target) {
  TORCH_CHECK(grad_loss.numel() == 1, "pygan::gradient_penalty_bwd: grad_loss must be a scalar");
  TORCH_CHECK(norms.dim() == 1 && norms.size(0) == grad_.size(0) && norms.scalar_type() == at::toOpMathType(grad_.scalar_type()),
              "pygan::gradient_penalty_bwd: norms must be (N,) in the accumulation dtype");
  cuda::check_same_device("gradient_penalty_bwd", {{"grad", &grad_}, {"norms", &norms}, {"grad_loss", &grad_loss}},
                          /*cpu_scalar_ok=*/true);
  const c10::cuda::CUDAGuard guard(grad_.device());
  const at::Tensor grad = as_rows(grad_);
  at::Tensor out = at::empty_like(grad_);
  at::Tensor work = batch_outer_dense(out) && out.strides() == grad.strides() ? out : at::empty_like(grad);
  const int64_t N = grad.size(0), K = grad.numel() / N;
  // coef[n] = grad_loss * 2/N * (1 - target / norm[n]), 0 where the norm is 0 (grad is 0 there).
  // Scalar - tensor and scalar / tensor spelled as ATen's operators do (TensorOperators.h would
  // pull in the header of every ATen op, which the build keeps out: setup.py).
  const at::Tensor ratio = at::empty_like(norms, at::MemoryFormat::Preserve).fill_(target).div_(norms);
  const at::Tensor one_minus = at::empty_like(ratio, at::MemoryFormat::Preserve).fill_(1.0).sub_(ratio);
  const at::Tensor coef = at::where(norms.gt(0), one_minus.mul(2.0 / N), at::zeros_like(norms))
                              .mul_(grad_loss.reshape({}).to(norms.scalar_type()).to(norms.device()))
                              .contiguous();
  if (grad.numel() > 0) {
    PYGAN_DISPATCH_FLOATING(grad.scalar_type(), "gradient_penalty_bwd_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const bool packed = rows_packable<scalar_t>(grad, K) && cuda::aligned16(work.const_data_ptr());
      scale_rows<scalar_t, acc_t><<<cuda::blocks_for(packed ? ceil_div(grad.numel(), pack_size<scalar_t>()) : grad.numel()),
                                   cuda::kThreads, 0, cuda::stream()>>>(
          grad.const_data_ptr<scalar_t>(), coef.const_data_ptr<acc_t>(), work.mutable_data_ptr<scalar_t>(), K, grad.numel(),
          packed);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  if (!work.is_same(out)) out.copy_(work);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("gradient_penalty", &gradient_penalty_cuda);
  m.impl("gradient_penalty_bwd", &gradient_penalty_bwd_cuda);
}

}  // namespace pygan
