// Progressive-growing fade-in, CPU.
//   z = alpha * high + (1 - alpha) * up(low),  up = 2x nearest neighbour (or identity)
//   out = z, or out = tanh(z) with tanh=True
// Backward: gz = g, or gz = g * (1 - y)(1 + y) with tanh_out = y (the forward's tanh output);
//   d_high = alpha * gz;  d_low = (1 - alpha) * (sum of each 2x2 block of gz, or gz).
// Loops run (n, c, h) lines over w for NCHW outputs and (n, h, w) lines over c for channels_last.
#include "common.h"
#include "output_cache.h"

namespace pygan {
namespace {

struct Strides4 {
  int64_t n, c, h, w;
  explicit Strides4(const at::Tensor& t) : n(t.stride(0)), c(t.stride(1)), h(t.stride(2)), w(t.stride(3)) {}
};

double alpha_value(const at::Tensor& alpha) {
  TORCH_CHECK(alpha.dim() == 0 && alpha.is_floating_point(),
              "pygan::fade_in: alpha must be a 0-dim floating-point tensor");
  TORCH_CHECK(alpha.device().is_cpu(), "pygan::fade_in (CPU): alpha must be on the CPU");
  return alpha.item<double>();
}

// Calls body(n, c, h, w) for every element of an (N, C, H, W) index space, in the loop order that
// suits `layout` (channels innermost when its channel stride is 1 and C > 1).
template <typename Body>
void for_each_nchw(int64_t N, int64_t C, int64_t H, int64_t W, const Strides4& layout, const Body& body) {
  if (C > 1 && layout.c == 1 && H * W > 1) {
    at::parallel_for(0, N * H * W, grain_for(C), [&](int64_t begin, int64_t end) {
      const Body fn = body;  // a task-local copy: stores through output pointers can't alias it
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / (H * W), h = (line / W) % H, w = line % W;
        for (int64_t c = 0; c < C; ++c) fn(n, c, h, w);
      }
    });
  } else {
    at::parallel_for(0, N * C * H, grain_for(W), [&](int64_t begin, int64_t end) {
      const Body fn = body;
      for (int64_t line = begin; line < end; ++line) {
        const int64_t n = line / (C * H), c = (line / H) % C, h = line % H;
        for (int64_t w = 0; w < W; ++w) fn(n, c, h, w);
      }
    });
  }
}

// The linear blend alpha * high + (1 - alpha) * up(low) into a new tensor in high's layout.
at::Tensor blend_cpu(const at::Tensor& low, const at::Tensor& high, double alpha) {
  const int64_t N = high.size(0), C = high.size(1), H = high.size(2), W = high.size(3);
  const int shift = low.sizes() != high.sizes() ? 1 : 0;
  at::Tensor out = output_like(high);
  if (out.numel() == 0) return out;
  const Strides4 ls(low), hs(high), os(out);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, high.scalar_type(), "fade_in", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t a = alpha, b = 1.0 - alpha;
    const scalar_t* l = low.const_data_ptr<scalar_t>();
    const scalar_t* h = high.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    for_each_nchw(N, C, H, W, os, [=](int64_t n, int64_t c, int64_t y, int64_t x) {
      const acc_t hv = h[n * hs.n + c * hs.c + y * hs.h + x * hs.w];
      const acc_t lv = l[n * ls.n + c * ls.c + (y >> shift) * ls.h + (x >> shift) * ls.w];
      o[n * os.n + c * os.c + y * os.h + x * os.w] = a * hv + b * lv;
    });
  });
  return out;
}

at::Tensor fade_in_cpu(const at::Tensor& low, const at::Tensor& high, const at::Tensor& alpha_t, bool use_tanh) {
  TORCH_CHECK(high.dim() == 4 && low.dim() == 4 && high.is_floating_point() &&
                  low.scalar_type() == high.scalar_type(),
              "pygan::fade_in: low and high must be (N, C, H, W) tensors of one floating dtype");
  const int64_t N = high.size(0), C = high.size(1), H = high.size(2), W = high.size(3);
  const bool up = low.sizes() != high.sizes();
  TORCH_CHECK(!up || (low.size(0) == N && low.size(1) == C && low.size(2) * 2 == H &&
                      low.size(3) * 2 == W),
              "pygan::fade_in: low must be high's shape or half its spatial size, got ", low.sizes(),
              " and ", high.sizes());
  const double alpha = alpha_value(alpha_t);
  if (!use_tanh) return blend_cpu(low, high, alpha);
  // tanh: the blend, then ATen's vectorised tanh in place. A std::tanh per element in the blend
  // loop does not vectorise (measured 3.2x slower than eager PyTorch's blend + tanh at
  // 8x64x32x32 float32). Half types blend and take tanh in float32 and round once, as the GPU
  // kernels do.
  const bool half = high.scalar_type() == at::kHalf || high.scalar_type() == at::kBFloat16;
  if (!half) return blend_cpu(low, high, alpha).tanh_();
  at::Tensor out = output_like(high);
  out.copy_(blend_cpu(low.to(at::kFloat), high.to(at::kFloat), alpha).tanh_());
  return out;
}

std::tuple<at::Tensor, at::Tensor> fade_in_bwd_cpu(const at::Tensor& grad, const at::Tensor& alpha_t,
                                                   bool upsampled, const std::optional<at::Tensor>& tanh_out) {
  TORCH_CHECK(grad.dim() == 4 && grad.is_floating_point(),
              "pygan::fade_in_bwd: grad must be a floating-point (N, C, H, W) tensor");
  const bool use_tanh = tanh_out.has_value();
  TORCH_CHECK(!use_tanh || (tanh_out->sizes() == grad.sizes() && tanh_out->scalar_type() == grad.scalar_type() &&
                            tanh_out->device() == grad.device()),
              "pygan::fade_in_bwd: tanh_out must be the forward's output, with grad's shape ", grad.sizes(),
              ", dtype and device; got ", use_tanh ? tanh_out->sizes() : grad.sizes());
  const int64_t N = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  const int shift = upsampled ? 1 : 0;
  const int64_t h = H >> shift, w = W >> shift;
  const double alpha = alpha_value(alpha_t);
  at::Tensor d_high = output_like(grad);
  at::Tensor d_low = empty_in_layout_of({N, C, h, w}, grad);
  if (grad.numel() == 0) return {d_low, d_high};
  const Strides4 gs(grad), hs(d_high), ls(d_low), ys(use_tanh ? *tanh_out : grad);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "fade_in_bwd", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t a = alpha, b = 1.0 - alpha;
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dh = d_high.mutable_data_ptr<scalar_t>();
    scalar_t* dl = d_low.mutable_data_ptr<scalar_t>();
    const scalar_t* yp = use_tanh ? tanh_out->const_data_ptr<scalar_t>() : nullptr;
    // Each task owns whole low-resolution elements: it reads their 2x2 (or 1x1) blocks of g
    // (and of the tanh output), writes d_high for those blocks and d_low for the element.
    // dact(gv, offset of y) is the gradient of z: one loop per activation, as in the forward.
    const auto backward = [&](auto dact) {
      for_each_nchw(N, C, h, w, ls, [=](int64_t n, int64_t c, int64_t y, int64_t x) {
        acc_t sum = 0;
        for (int64_t dy = 0; dy <= shift; ++dy) {
          for (int64_t dx = 0; dx <= shift; ++dx) {
            const int64_t Y = (y << shift) + dy, X = (x << shift) + dx;
            const acc_t gv = dact(static_cast<acc_t>(g[n * gs.n + c * gs.c + Y * gs.h + X * gs.w]),
                                  n * ys.n + c * ys.c + Y * ys.h + X * ys.w);
            dh[n * hs.n + c * hs.c + Y * hs.h + X * hs.w] = a * gv;
            sum += gv;
          }
        }
        dl[n * ls.n + c * ls.c + y * ls.h + x * ls.w] = b * sum;
      });
    };
    if (use_tanh) {
      backward([yp](acc_t gv, int64_t i) {
        const acc_t yv = yp[i];
        return gv * ((acc_t(1) - yv) * (acc_t(1) + yv));
      });
    } else {
      backward([](acc_t gv, int64_t) { return gv; });
    }
  });
  return {d_low, d_high};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("fade_in", &fade_in_cpu);
  m.impl("fade_in_bwd", &fade_in_bwd_cpu);
}

}  // namespace pygan
