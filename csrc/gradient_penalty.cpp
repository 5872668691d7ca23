// Gradient-penalty norm term, CPU.
//   norms[n] = ||grad[n]||_2,  loss = mean_n (norms[n] - target)^2
// Backward: d grad[n] = g_loss * 2/N * (1 - target / norms[n]) * grad[n]  (0 where norms[n] = 0)
// Any dense layout whose batch dim is outermost is read in memory order (the norm does not care
// about the order of a sample's elements); other layouts are made contiguous first.
#include "common.h"
#include "output_cache.h"

#include <vector>

namespace pygan {
namespace {

// Elements per partial sum: rows are split at fixed offsets so sums are deterministic.
constexpr int64_t kRowChunk = 1 << 14;

bool batch_outer_dense(const at::Tensor& t) {
  return t.is_non_overlapping_and_dense() && (t.size(0) == 1 || t.stride(0) == t.numel() / t.size(0));
}

at::Tensor as_rows(const at::Tensor& t) { return batch_outer_dense(t) ? t : t.contiguous(); }

std::tuple<at::Tensor, at::Tensor> gradient_penalty_cpu(const at::Tensor& grad_, double target) {
  TORCH_CHECK(grad_.dim() >= 1 && grad_.size(0) >= 1 && grad_.is_floating_point(),
              "pygan::gradient_penalty: grad must be a floating-point (N, ...) tensor with N >= 1");
  const at::Tensor grad = as_rows(grad_);
  const int64_t N = grad.size(0), K = grad.numel() / N, chunks = ceil_div(std::max<int64_t>(K, 1), kRowChunk);
  const auto norm_type = at::toOpMathType(grad.scalar_type());
  at::Tensor norms = at::empty({N}, grad.options().dtype(norm_type));
  at::Tensor loss = at::empty({}, grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gradient_penalty", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    std::vector<acc_t> partial(N * chunks);
    at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t n = u / chunks, k0 = (u % chunks) * kRowChunk, k1 = std::min(K, k0 + kRowChunk);
        const scalar_t* row = g + n * K;
        // a SIMD reduction: vectorised, and a shorter rounding-error chain than one running sum
        acc_t sum = 0;
        _Pragma("omp simd reduction(+ : sum)")
        for (int64_t k = k0; k < k1; ++k) {
          const acc_t v = row[k];
          sum += v * v;
        }
        partial[u] = sum;
      }
    });
    acc_t* nr = norms.mutable_data_ptr<acc_t>();
    double total = 0;
    for (int64_t n = 0; n < N; ++n) {
      acc_t sum = 0;
      for (int64_t k = 0; k < chunks; ++k) sum += partial[n * chunks + k];
      nr[n] = std::sqrt(sum);
      total += (double(nr[n]) - target) * (double(nr[n]) - target);
    }
    loss.fill_(total / double(N));
  });
  return {loss, norms};
}

at::Tensor gradient_penalty_bwd_cpu(const at::Tensor& grad_loss, const at::Tensor& grad_,
                                    const at::Tensor& norms, double target) {
  TORCH_CHECK(grad_loss.numel() == 1, "pygan::gradient_penalty_bwd: grad_loss must be a scalar");
  TORCH_CHECK(norms.dim() == 1 && norms.size(0) == grad_.size(0) &&
                  norms.scalar_type() == at::toOpMathType(grad_.scalar_type()),
              "pygan::gradient_penalty_bwd: norms must be (N,) in the accumulation dtype");
  const at::Tensor grad = as_rows(grad_);
  at::Tensor out = output_like(grad_);
  at::Tensor work = batch_outer_dense(out) && out.strides() == grad.strides() ? out : output_like(grad);
  const int64_t N = grad.size(0), K = grad.numel() / N;
  const double gl = grad_loss.item<double>();
  const at::Tensor norms_c = norms.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "gradient_penalty_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const acc_t* nr = norms_c.const_data_ptr<acc_t>();
    scalar_t* d = work.mutable_data_ptr<scalar_t>();
    const int64_t chunks = ceil_div(std::max<int64_t>(K, 1), kRowChunk);
    at::parallel_for(0, N * chunks, 1, [&, gl, target](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t n = u / chunks, k0 = (u % chunks) * kRowChunk, k1 = std::min(K, k0 + kRowChunk);
        const acc_t coef = nr[n] > acc_t(0) ? acc_t(gl * 2.0 / N * (1.0 - target / double(nr[n]))) : acc_t(0);
        for (int64_t k = k0; k < k1; ++k) d[n * K + k] = coef * static_cast<acc_t>(g[n * K + k]);
      }
    });
  });
  if (!work.is_same(out)) out.copy_(work);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("gradient_penalty", &gradient_penalty_cpu);
  m.impl("gradient_penalty_bwd", &gradient_penalty_bwd_cpu);
}

}  // namespace pygan
