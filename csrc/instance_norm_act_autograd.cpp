// Autograd of pygan::instance_norm_act in C++, for the C++ and CUDA kernels: the same formula as the
// Python one in pygan/ops/instance_norm_act.py (which the Triton namespace keeps), without its cost
// per call. torch.library's Python autograd took ~55 us per forward + backward on top of the two
// kernels, which at (1, 256, 64, 64) is most of the gap between the fused op and its 2x target.
//
//   forward:  y = pygan::instance_norm_act(x, weight, bias, residual, slope, eps)
//   backward: (dx, dweight, dbias) = pygan::instance_norm_act_bwd(g, x, weight, bias, slope, eps),
//             dresidual = g.
// The backward calls the _bwd op through the dispatcher, so with create_graph its own autograd
// (registered from Python: the double-backward formula) records it: second order works as before.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace pygan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class InstanceNormAct : public torch::autograd::Function<InstanceNormAct> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::optional<at::Tensor>& weight,
                            const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& residual,
                            double slope, double eps) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("pygan::instance_norm_act", "")
                               .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&,
                                                 const std::optional<at::Tensor>&,
                                                 const std::optional<at::Tensor>&, double, double)>();
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor y = op.call(x, weight, bias, residual, slope, eps);
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor())});
    ctx->saved_data["slope"] = slope;
    ctx->saved_data["eps"] = eps;
    // needs_input_grad counts the tensor arguments that were given (nullopt ones have no edge)
    ctx->saved_data["present"] = std::vector<bool>{true, weight.has_value(), bias.has_value(), residual.has_value()};
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto bwd = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("pygan::instance_norm_act_bwd", "")
                                .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&, double, double)>();
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const std::optional<at::Tensor> weight = saved[1].defined() ? std::optional<at::Tensor>(saved[1]) : std::nullopt;
    const std::optional<at::Tensor> bias = saved[2].defined() ? std::optional<at::Tensor>(saved[2]) : std::nullopt;
    const at::Tensor& g = grads[0];
    bool need[4] = {};
    size_t edge = 0;
    const c10::List<bool> present = ctx->saved_data["present"].toBoolList();
    for (size_t i = 0; i < 4; ++i) need[i] = present[i] && ctx->needs_input_grad(edge++);
    at::Tensor dx, dw, db;
    if (need[0] || need[1] || need[2]) {
      // Without create_graph nothing records the _bwd op: skip its (Python) autograd kernel.
      std::optional<at::AutoDispatchBelowADInplaceOrView> below_autograd;
      if (!at::GradMode::is_enabled()) below_autograd.emplace();
      std::tie(dx, dw, db) = bwd.call(g, x, weight, bias, ctx->saved_data["slope"].toDouble(),
                                      ctx->saved_data["eps"].toDouble());
    }
    return {need[0] ? dx : at::Tensor(), need[1] ? dw : at::Tensor(), need[2] ? db : at::Tensor(),
            need[3] ? g : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor instance_norm_act_autograd(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                      const std::optional<at::Tensor>& bias,
                                      const std::optional<at::Tensor>& residual, double slope, double eps) {
  return InstanceNormAct::apply(x, weight, bias, residual, slope, eps);
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("instance_norm_act", &instance_norm_act_autograd);
}

}  // namespace pygan
