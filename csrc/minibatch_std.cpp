// Minibatch standard deviation, CPU. Sample n = g * M + m is in group m (M = N / G groups of G).
// D = G - 1 when unbiased (Bessel's correction, as torch.std; needs G >= 2), else D = G.
//   mu = mean_g x[g*M+m, c, p]  (always / G)
//   sigma[m, c, p] = sqrt(sum_g (x[g*M+m, c, p] - mu)^2 / D + eps)
//   s[m, f] = mean_{c in f, p} sigma;  out = cat(x, s[n mod M, f] replicated over pixels)
// Backward: dx = grad[:, :C] + gs[m, f] / (Cf * P) * (x - mu) / (D * sigma),
//   gs[m, f] = sum over the group's samples and pixels of grad[:, C + f].
#include "common.h"
#include "output_cache.h"

#include <vector>

namespace pygan {
namespace {

// Checks the arguments; returns D, the divisor of the sum of squared deviations.
int64_t check_args(const at::Tensor& x, int64_t G, int64_t F, bool unbiased, const char* op) {
  TORCH_CHECK(x.dim() == 4 && x.is_floating_point(), "pygan::", op,
              ": x must be a floating-point (N, C, H, W) tensor, got ", x.sizes());
  TORCH_CHECK(G >= 1 && x.size(0) % G == 0, "pygan::", op, ": N=", x.size(0),
              " is not divisible by group_size=", G);
  TORCH_CHECK(F >= 1 && x.size(1) % F == 0, "pygan::", op, ": C=", x.size(1),
              " is not divisible by num_channels=", F);
  TORCH_CHECK_VALUE(!unbiased || G >= 2, "pygan::", op, ": unbiased=True needs group_size >= 2, got ",
                    "group_size=", G, " (the unbiased variance of one sample is undefined)");
  return unbiased ? G - 1 : G;
}

// sum_p sigma[m, c, p] for every (m, c), in acc_t.
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
std::vector<acc_t> sigma_sums(const scalar_t* x, const NCS& xv, int64_t G, int64_t D, double eps) {
  const int64_t M = xv.n / G, C = xv.c, S = xv.s;
  std::vector<acc_t> sums(M * C);
  at::parallel_for(0, M * C, grain_for(G * S), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> v(G);
    for (int64_t mc = begin; mc < end; ++mc) {
      const int64_t m = mc / C, c = mc % C;
      const scalar_t* base = x + m * xv.sn + c * xv.sc;
      acc_t total = 0;
      for (int64_t s = 0; s < S; ++s) {
        acc_t mean = 0;
        for (int64_t g = 0; g < G; ++g) {
          v[g] = base[g * M * xv.sn + s * xv.ss];
          mean += v[g];
        }
        mean /= acc_t(G);
        acc_t var = 0;
        for (int64_t g = 0; g < G; ++g) var += (v[g] - mean) * (v[g] - mean);
        total += std::sqrt(var / acc_t(D) + acc_t(eps));
      }
      sums[mc] = total;
    }
  });
  return sums;
}

at::Tensor minibatch_std_cpu(const at::Tensor& x_, int64_t G, int64_t F, double eps, bool unbiased) {
  const int64_t D = check_args(x_, G, F, unbiased, "minibatch_std");
  const int64_t N = x_.size(0), C = x_.size(1), H = x_.size(2), W = x_.size(3);
  at::Tensor out = empty_in_layout_of({N, C + F, H, W}, x_);
  out.narrow(1, 0, C).copy_(x_);
  if (out.numel() == 0) return out;
  NCS xv, ov;
  const at::Tensor x = ncs_input(x_, xv);
  TORCH_INTERNAL_ASSERT(as_ncs(out, ov));
  const int64_t M = N / G, Cf = C / F, S = xv.s;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_std", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto sums = sigma_sums<scalar_t>(x.const_data_ptr<scalar_t>(), xv, G, D, eps);
    std::vector<scalar_t> stat(M * F);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t f = 0; f < F; ++f) {
        acc_t t = 0;
        for (int64_t c = f * Cf; c < (f + 1) * Cf; ++c) t += sums[m * C + c];
        stat[m * F + f] = static_cast<scalar_t>(t / acc_t(Cf * S));
      }
    }
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, N * F, grain_for(S), [&](int64_t begin, int64_t end) {
      for (int64_t nf = begin; nf < end; ++nf) {
        const int64_t n = nf / F, f = nf % F;
        const scalar_t value = stat[(n % M) * F + f];
        scalar_t* line = o + n * ov.sn + (C + f) * ov.sc;
        for (int64_t s = 0; s < S; ++s) line[s * ov.ss] = value;
      }
    });
  });
  return out;
}

at::Tensor minibatch_std_bwd_cpu(const at::Tensor& grad_, const at::Tensor& x_, int64_t G, int64_t F,
                                 double eps, bool unbiased) {
  const int64_t D = check_args(x_, G, F, unbiased, "minibatch_std_bwd");
  const int64_t N = x_.size(0), C = x_.size(1);
  TORCH_CHECK(grad_.dim() == 4 && grad_.size(0) == N && grad_.size(1) == C + F &&
                  grad_.size(2) == x_.size(2) && grad_.size(3) == x_.size(3) &&
                  grad_.scalar_type() == x_.scalar_type(),
              "pygan::minibatch_std_bwd: grad must be (N, C + num_channels, H, W) with x's dtype");
  NCS xv, gv;
  const at::Tensor x = ncs_input(x_, xv), grad = ncs_input(grad_, gv);
  NCSOutput dx(output_like(x_));
  if (x.numel() == 0) return dx.out;
  const int64_t M = N / G, Cf = C / F, S = xv.s;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "minibatch_std_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* d = dx.work.mutable_data_ptr<scalar_t>();
    // k[m, f] = gs[m, f] / (Cf * S)
    std::vector<acc_t> k(M * F);
    at::parallel_for(0, M * F, grain_for(G * S), [&](int64_t begin, int64_t end) {
      for (int64_t mf = begin; mf < end; ++mf) {
        const int64_t m = mf / F, f = mf % F;
        acc_t t = 0;
        for (int64_t gi = 0; gi < G; ++gi) {
          const scalar_t* line = g + (gi * M + m) * gv.sn + (C + f) * gv.sc;
          for (int64_t s = 0; s < S; ++s) t += static_cast<acc_t>(line[s * gv.ss]);
        }
        k[mf] = t / acc_t(Cf * S);
      }
    });
    at::parallel_for(0, M * C, grain_for(G * S), [&](int64_t begin, int64_t end) {
      std::vector<acc_t> v(G);
      for (int64_t mc = begin; mc < end; ++mc) {
        const int64_t m = mc / C, c = mc % C;
        const acc_t kmf = k[m * F + c / Cf] / acc_t(D);
        for (int64_t s = 0; s < S; ++s) {
          acc_t mean = 0;
          for (int64_t gi = 0; gi < G; ++gi) {
            v[gi] = xp[(gi * M + m) * xv.sn + c * xv.sc + s * xv.ss];
            mean += v[gi];
          }
          mean /= acc_t(G);
          acc_t var = 0;
          for (int64_t gi = 0; gi < G; ++gi) var += (v[gi] - mean) * (v[gi] - mean);
          const acc_t coef = kmf / std::sqrt(var / acc_t(D) + acc_t(eps));
          for (int64_t gi = 0; gi < G; ++gi) {
            const int64_t n = gi * M + m;
            d[n * dx.v.sn + c * dx.v.sc + s * dx.v.ss] =
                static_cast<acc_t>(g[n * gv.sn + c * gv.sc + s * gv.ss]) + coef * (v[gi] - mean);
          }
        }
      }
    });
  });
  return dx.finish();
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("minibatch_std", &minibatch_std_cpu);
  m.impl("minibatch_std_bwd", &minibatch_std_bwd_cpu);
}

}  // namespace pygan
