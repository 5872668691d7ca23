// Bias + leaky ReLU with gains, CPU.
//   y  = gain * leaky_relu(x * scale + bias[c], slope)
//   dz = g * gain * (y > 0 ? 1 : slope);  dx = scale * dz;  dbias[c] = sum_{n, s} dz
// Lines run along the innermost dim: spatial rows for NCHW, channel vectors for channels_last.
#include "common.h"

namespace pygan {
namespace {

template <typename scalar_t>
void bias_lrelu_kernel(const scalar_t* x, NCS xv, const scalar_t* bias, scalar_t* y, NCS yv,
                       double scale_, double slope_, double gain_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t scale = scale_, slope = slope_, gain = gain_;
  const int64_t N = xv.n, C = xv.c, S = xv.s;
  if (!xv.channels_inner()) {  // lines: (n, c) rows over s
    at::parallel_for(0, N * C, grain_for(S), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / C, c = line % C;
        const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
        const scalar_t* xl = x + n * xv.sn + c * xv.sc;
        scalar_t* yl = y + n * yv.sn + c * yv.sc;
        for (int64_t s = 0; s < S; ++s) {
          yl[s * yv.ss] = lrelu_gain<acc_t>(static_cast<acc_t>(xl[s * xv.ss]) * scale + b, slope, gain);
        }
      }
    });
  } else {  // lines: (n, s) pixels over c
    at::parallel_for(0, N * S, grain_for(C), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / S, s = line % S;
        const scalar_t* xl = x + n * xv.sn + s * xv.ss;
        scalar_t* yl = y + n * yv.sn + s * yv.ss;
        for (int64_t c = 0; c < C; ++c) {
          const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
          yl[c * yv.sc] = lrelu_gain<acc_t>(static_cast<acc_t>(xl[c * xv.sc]) * scale + b, slope, gain);
        }
      }
    });
  }
}

// Writes dx and, when db != nullptr, the per-channel sums of dz into db (deterministically:
// partial sums over a size-only split, added in a fixed order).
template <typename scalar_t>
void bias_lrelu_bwd_kernel(const scalar_t* g, NCS gv, const scalar_t* out, NCS ov, scalar_t* dx,
                           NCS dv, scalar_t* db, double scale_, double slope_, double gain_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t scale = scale_, pos = gain_, neg = gain_ * slope_;
  const int64_t N = ov.n, C = ov.c, S = ov.s;
  if (!ov.channels_inner()) {  // lines: (n, c) rows over s; one partial sum per line
    std::vector<acc_t> line_sum(db ? N * C : 0);
    at::parallel_for(0, N * C, grain_for(S), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / C, c = line % C;
        const scalar_t* gl = g + n * gv.sn + c * gv.sc;
        const scalar_t* ol = out + n * ov.sn + c * ov.sc;
        scalar_t* dl = dx + n * dv.sn + c * dv.sc;
        acc_t sum = 0;
        for (int64_t s = 0; s < S; ++s) {
          const acc_t dz = static_cast<acc_t>(gl[s * gv.ss]) *
                           (static_cast<acc_t>(ol[s * ov.ss]) > acc_t(0) ? pos : neg);
          dl[s * dv.ss] = dz * scale;
          sum += dz;
        }
        if (db) line_sum[line] = sum;
      }
    });
    if (db) {
      for (int64_t c = 0; c < C; ++c) {
        acc_t sum = 0;
        for (int64_t n = 0; n < N; ++n) sum += line_sum[n * C + c];
        db[c] = sum;
      }
    }
  } else {  // lines: (n, s) pixels over c; partial sums per chunk of lines
    const int64_t lines = N * S, chunk = ceil_div(lines, kMaxChunks), chunks = ceil_div(lines, chunk);
    std::vector<acc_t> partial(db ? chunks * C : 0, acc_t(0));
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        acc_t* part = db ? partial.data() + k * C : nullptr;
        for (int64_t line = k * chunk; line < std::min(lines, (k + 1) * chunk); ++line) {
          const int64_t n = line / S, s = line % S;
          const scalar_t* gl = g + n * gv.sn + s * gv.ss;
          const scalar_t* ol = out + n * ov.sn + s * ov.ss;
          scalar_t* dl = dx + n * dv.sn + s * dv.ss;
          for (int64_t c = 0; c < C; ++c) {
            const acc_t dz = static_cast<acc_t>(gl[c * gv.sc]) *
                             (static_cast<acc_t>(ol[c * ov.sc]) > acc_t(0) ? pos : neg);
            dl[c * dv.sc] = dz * scale;
            if (part) part[c] += dz;
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
}

at::Tensor bias_lrelu_cpu(const at::Tensor& x_, const std::optional<at::Tensor>& bias_,
                          double scale, double slope, double gain) {
  check_x_bias(x_, bias_, "bias_lrelu");
  NCS xv;
  const at::Tensor x = ncs_input(x_, xv);
  const at::Tensor bias = bias_.has_value() ? bias_->contiguous() : at::Tensor();
  NCSOutput y(at::empty_like(x_));
  if (x.numel() == 0) return y.out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_lrelu", [&] {
    bias_lrelu_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), xv,
                                bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr,
                                y.work.mutable_data_ptr<scalar_t>(), y.v, scale, slope, gain);
  });
  return y.finish();
}

std::tuple<at::Tensor, at::Tensor> bias_lrelu_bwd_cpu(const at::Tensor& grad_, const at::Tensor& out_,
                                                      double scale, double slope, double gain,
                                                      bool bias_grad) {
  TORCH_CHECK(grad_.sizes() == out_.sizes() && grad_.scalar_type() == out_.scalar_type(),
              "pygan::bias_lrelu_bwd: grad must match out in shape and dtype");
  check_x_bias(out_, std::nullopt, "bias_lrelu_bwd");
  NCS gv, ov;
  const at::Tensor grad = ncs_input(grad_, gv), out = ncs_input(out_, ov);
  NCSOutput dx(at::empty_like(grad_));
  at::Tensor db = at::empty({bias_grad ? grad_.size(1) : 0}, grad_.options());
  if (grad.numel() == 0) {
    db.zero_();
    return {dx.out, db};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "bias_lrelu_bwd", [&] {
    bias_lrelu_bwd_kernel<scalar_t>(grad.const_data_ptr<scalar_t>(), gv,
                                    out.const_data_ptr<scalar_t>(), ov,
                                    dx.work.mutable_data_ptr<scalar_t>(), dx.v,
                                    bias_grad ? db.mutable_data_ptr<scalar_t>() : nullptr, scale,
                                    slope, gain);
  });
  return {dx.finish(), db};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("bias_lrelu", &bias_lrelu_cpu);
  m.impl("bias_lrelu_bwd", &bias_lrelu_bwd_cpu);
}

}  // namespace pygan
