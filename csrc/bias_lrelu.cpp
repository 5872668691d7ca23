// Bias + leaky ReLU with gains, CPU.
//   y  = gain * leaky_relu(x * scale + bias[c], slope)
//   dz = g * gain * (y > 0 ? 1 : slope);  dx = scale * dz;  dbias[c] = sum_{n, s} dz
// Lines run along the innermost dim: spatial rows for NCHW, channel vectors for channels_last.
#include "common.h"
#include "output_cache.h"

namespace pygan {
namespace {

// One line of the forward: y[i] = gain * lrelu(x[i] * scale + b). Parameters by value and
// restrict pointers, so the unit-stride loop vectorises.
template <typename scalar_t, typename acc_t>
inline void forward_line(const scalar_t* __restrict x, int64_t xs, scalar_t* __restrict y, int64_t ys,
                         int64_t len, acc_t scale, acc_t b, acc_t pos, acc_t neg) {
  if (xs == 1 && ys == 1) {
    for (int64_t i = 0; i < len; ++i) y[i] = lrelu_gain<acc_t>(static_cast<acc_t>(x[i]) * scale + b, pos, neg);
  } else {
    for (int64_t i = 0; i < len; ++i) y[i * ys] = lrelu_gain<acc_t>(static_cast<acc_t>(x[i * xs]) * scale + b, pos, neg);
  }
}

// One channel vector of the forward with unit strides: y[c] = gain * lrelu(x[c] * scale + bias[c]).
template <typename scalar_t, typename acc_t>
inline void forward_channels(const scalar_t* __restrict x, const scalar_t* __restrict bias,
                             scalar_t* __restrict y, int64_t C, acc_t scale, acc_t pos, acc_t neg) {
  for (int64_t c = 0; c < C; ++c) {
    y[c] = lrelu_gain<acc_t>(static_cast<acc_t>(x[c]) * scale + static_cast<acc_t>(bias[c]), pos, neg);
  }
}

// Lines run over channels when channels are innermost, and also for (N, C) inputs (S = 1), where
// rows of one element would cost a call and a bias load per element.
inline bool lines_over_channels(const NCS& v) { return v.channels_inner() || (v.s == 1 && v.c > 1); }

template <typename scalar_t>
void bias_lrelu_kernel(const scalar_t* x, NCS xv, const scalar_t* bias, scalar_t* y, NCS yv,
                       double scale_, double slope_, double gain_) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t scale = scale_, pos = gain_, neg = gain_ * slope_;
  const int64_t N = xv.n, C = xv.c, S = xv.s;
  if (!lines_over_channels(xv)) {  // lines: (n, c) rows over s
    at::parallel_for(0, N * C, grain_for(S), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / C, c = line % C;
        const acc_t b = bias ? static_cast<acc_t>(bias[c]) : acc_t(0);
        forward_line<scalar_t, acc_t>(x + n * xv.sn + c * xv.sc, xv.ss, y + n * yv.sn + c * yv.sc, yv.ss,
                                      S, scale, b, pos, neg);
      }
    });
  } else {  // lines: (n, s) pixels over c
    at::parallel_for(0, N * S, grain_for(C), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / S, s = line % S;
        const scalar_t* xl = x + n * xv.sn + s * xv.ss;
        scalar_t* yl = y + n * yv.sn + s * yv.ss;
        if (bias == nullptr) {
          forward_line<scalar_t, acc_t>(xl, xv.sc, yl, yv.sc, C, scale, acc_t(0), pos, neg);
        } else if (xv.sc == 1 && yv.sc == 1) {
          forward_channels<scalar_t, acc_t>(xl, bias, yl, C, scale, pos, neg);
        } else {
          for (int64_t c = 0; c < C; ++c) {
            yl[c * yv.sc] = lrelu_gain<acc_t>(static_cast<acc_t>(xl[c * xv.sc]) * scale + static_cast<acc_t>(bias[c]), pos, neg);
          }
        }
      }
    });
  }
}

// One line of the backward: dz = g * (out > 0 ? pos : neg), dx = scale * dz; returns sum(dz).
template <typename scalar_t, typename acc_t>
inline acc_t backward_line(const scalar_t* __restrict g, int64_t gs, const scalar_t* __restrict o, int64_t os,
                           scalar_t* __restrict d, int64_t ds, int64_t len, acc_t scale, acc_t pos, acc_t neg) {
  // eight lanes keep the sum vectorisable without reassociation flags
  acc_t lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (gs == 1 && os == 1 && ds == 1) {
    int64_t i = 0;
    for (; i + 8 <= len; i += 8) {
      for (int j = 0; j < 8; ++j) {
        const acc_t dz = static_cast<acc_t>(g[i + j]) * (static_cast<acc_t>(o[i + j]) > acc_t(0) ? pos : neg);
        d[i + j] = dz * scale;
        lane[j] += dz;
      }
    }
    for (; i < len; ++i) {
      const acc_t dz = static_cast<acc_t>(g[i]) * (static_cast<acc_t>(o[i]) > acc_t(0) ? pos : neg);
      d[i] = dz * scale;
      lane[0] += dz;
    }
  } else {
    for (int64_t i = 0; i < len; ++i) {
      const acc_t dz = static_cast<acc_t>(g[i * gs]) * (static_cast<acc_t>(o[i * os]) > acc_t(0) ? pos : neg);
      d[i * ds] = dz * scale;
      lane[0] += dz;
    }
  }
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// One channel vector of the backward with unit strides; adds dz into part[c].
template <typename scalar_t, typename acc_t>
inline void backward_channels(const scalar_t* __restrict g, const scalar_t* __restrict o,
                              scalar_t* __restrict d, acc_t* __restrict part, int64_t C, acc_t scale,
                              acc_t pos, acc_t neg) {
  for (int64_t c = 0; c < C; ++c) {
    const acc_t dz = static_cast<acc_t>(g[c]) * (static_cast<acc_t>(o[c]) > acc_t(0) ? pos : neg);
    d[c] = dz * scale;
    part[c] += dz;
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
  if (!lines_over_channels(ov)) {  // lines: (n, c) rows over s; one partial sum per line
    std::vector<acc_t> line_sum(db ? N * C : 0);
    at::parallel_for(0, N * C, grain_for(S), [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / C, c = line % C;
        const acc_t sum = backward_line<scalar_t, acc_t>(
            g + n * gv.sn + c * gv.sc, gv.ss, out + n * ov.sn + c * ov.sc, ov.ss,
            dx + n * dv.sn + c * dv.sc, dv.ss, S, scale, pos, neg);
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
      const acc_t sc = scale, p = pos, q = neg;  // task-local: cannot alias the outputs
      for (int64_t k = begin; k < end; ++k) {
        acc_t* part = db ? partial.data() + k * C : nullptr;
        for (int64_t line = k * chunk; line < std::min(lines, (k + 1) * chunk); ++line) {
          const int64_t n = line / S, s = line % S;
          const scalar_t* gl = g + n * gv.sn + s * gv.ss;
          const scalar_t* ol = out + n * ov.sn + s * ov.ss;
          scalar_t* dl = dx + n * dv.sn + s * dv.ss;
          if (part && gv.sc == 1 && ov.sc == 1 && dv.sc == 1) {
            backward_channels<scalar_t, acc_t>(gl, ol, dl, part, C, sc, p, q);
            continue;
          }
          for (int64_t c = 0; c < C; ++c) {
            const acc_t dz = static_cast<acc_t>(gl[c * gv.sc]) * (static_cast<acc_t>(ol[c * ov.sc]) > acc_t(0) ? p : q);
            dl[c * dv.sc] = dz * sc;
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
  NCSOutput y(output_like(x_));
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
  NCSOutput dx(output_like(grad_));
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
