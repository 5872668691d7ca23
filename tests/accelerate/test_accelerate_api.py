"""``pygan.accelerate`` leaves everything but the maths' speed as it was: parameters (the same
objects), state_dict keys, sharing, train/eval, hooks, optimizers built before the call,
deepcopy/pickling, torch.compile and DDP; what is not provably identical is left alone with a
reason; ``verify`` catches a wrong kernel; ``dry_run`` and ``restore`` change nothing back."""

from __future__ import annotations

import copy
import io
import os

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

import pygan
import pygan.dropin._fused as fused
import seed_models as S


def small_cycle_disc():
    torch.manual_seed(0)
    return S.CycleDiscriminator((3, 32, 32), ndf=4)


def patched_attrs(model):
    return [(n, a) for n, m in model.named_modules() for a, v in vars(m).items()
            if isinstance(v, fused._Patch)]


def test_parameters_state_dict_and_optimizer_survive():
    model = small_cycle_disc()
    params = list(model.parameters())
    keys = list(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reference = copy.deepcopy(model)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    report = pygan.accelerate(model, backend="cpp")
    assert len(report) == 8
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert list(model.state_dict()) == keys
    x = torch.randn(2, 3, 32, 32)
    for m, o in ((model, opt), (reference, ref_opt)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    # The optimizer made before the call moved the parameters the accelerated model reads.
    torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    model.load_state_dict(reference.state_dict())
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_shared_module_stays_shared_and_correct():
    torch.manual_seed(0)
    conv = S.WSConv2d(4, 4)
    model = nn.Sequential(conv, nn.LeakyReLU(0.2), conv)     # used twice: not folded
    reference = copy.deepcopy(model)
    report = pygan.accelerate(model, backend="cpp")
    assert model[0] is model[2]
    assert "0" in report and report["0"].replaced            # the scale + bias alone still fuse
    assert not report["1"].replaced and "shared" in report["1"].reason
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_train_eval_and_hooks():
    model = small_cycle_disc()
    seen = []
    model.model[4].register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    root_calls = []
    model.register_forward_hook(lambda m, i, o: root_calls.append(1))
    reference = copy.deepcopy(model)
    report = pygan.accelerate(model, backend="cpp")
    assert not report["model.4"].replaced and "hooks" in report["model.4"].reason
    # The norm before it is replaced on its own; the hooked activation still runs.
    assert report["model.3"].was == "InstanceNorm2d(8)" and report["model.3"].replaced
    x = torch.randn(2, 3, 32, 32)
    for mode in ("eval", "train"):
        getattr(model, mode)()
        getattr(reference, mode)()
        assert all(m.training == (mode == "train") for m in model.modules())
        seen.clear()
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)
        a, b = seen                                            # the hook ran in both, same values
        torch.testing.assert_close(a, b)
    assert len(root_calls) == 4


def test_dry_run_changes_nothing_and_restore_undoes():
    model = small_cycle_disc()
    report = pygan.accelerate(model, dry_run=True)
    assert len(report) == 8 and report.dry_run and "would replace 8" in str(report)
    assert patched_attrs(model) == []
    pygan.accelerate(model)
    assert len(patched_attrs(model)) == 8
    assert pygan.restore(model) == 8 and patched_attrs(model) == []


def test_second_call_is_a_no_op():
    model = small_cycle_disc()
    pygan.accelerate(model)
    again = pygan.accelerate(model)
    assert len(again) == 0 and len(patched_attrs(model)) == 8
    assert all("already accelerated" in r.reason for r in again.left_alone
               if r.path in ("model.0", "model.3")), str(again)


def test_verify_rejects_a_wrong_kernel(monkeypatch):
    model = small_cycle_disc()
    reference = copy.deepcopy(model)
    real = pygan.ops.bias_lrelu
    monkeypatch.setattr(pygan.ops, "bias_lrelu", lambda *a, **k: real(*a, **k) * (1 + 1e-3))
    report = pygan.accelerate(model)
    assert not report["model.0"].replaced
    assert "verification failed" in report["model.0"].reason
    assert report["model.3"].replaced                       # the instance norms are still right
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)
    # Without verification the same wrong kernel is kept: verify is what protected the model.
    unverified = copy.deepcopy(reference)
    assert pygan.accelerate(unverified, verify=False)["model.0"].replaced
    first = reference.model[1](reference.model[0](x))
    assert not torch.allclose(unverified.model[0](x), first, rtol=1e-5, atol=1e-6)


def test_lookalikes_are_left_alone():
    class NotQuiteWS(nn.Module):            # adds 1 after the scaled conv: not scale * conv + b
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.scale = 0.5

        def forward(self, x):
            return self.conv(x * self.scale) + 1

    class RmsNoEps(nn.Module):              # eps outside the square root
        def __init__(self):
            super().__init__()
            self.eps = 1e-8

        def forward(self, x):
            return x / (x.square().mean(dim=1, keepdim=True).sqrt() + self.eps)

    class Skip(nn.Module):                  # the conv's output is used twice
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(4, 4, 3, padding=1), nn.LeakyReLU(0.2)

        def forward(self, x):
            y = self.conv(x)
            return self.act(y) + y

    model = nn.Sequential(NotQuiteWS(), RmsNoEps(), Skip(), nn.InstanceNorm2d(4, track_running_stats=True))
    reference = copy.deepcopy(model)
    report = pygan.accelerate(model)
    assert len(report) == 0, str(report)
    assert "does not compute scale * Conv2d(x) + bias" in report["0"].reason
    assert "follows Conv2d" not in report["2.act"].reason
    assert "running statistics" in report["3"].reason
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(model(x), reference(x))


def test_inputs_outside_the_fused_path_run_the_original():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.2), nn.InstanceNorm2d(4), nn.ReLU())
    reference = copy.deepcopy(model)
    assert len(pygan.accelerate(model)) == 4
    x = torch.randn(3, 10, 10)                                  # unbatched: torch allows it
    torch.testing.assert_close(model(x), reference(x))


def test_deepcopy_and_pickle_keep_the_replacements():
    model = small_cycle_disc()
    pygan.accelerate(model)
    x = torch.randn(2, 3, 32, 32)
    clone = copy.deepcopy(model)
    assert clone.model[0].forward.owner is clone.model[0]
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.model[0].forward.owner is loaded.model[0]
    for m in (clone, loaded):
        assert len(patched_attrs(m)) == 8
        torch.testing.assert_close(m(x), model(x))


def test_torch_compile_runs_the_fused_ops():
    model = small_cycle_disc()
    pygan.accelerate(model, backend="cpp")
    x = torch.randn(1, 3, 32, 32)
    names = set()

    def backend(gm, example_inputs):
        names.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    compiled = torch.compile(model, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    assert any("pygan.bias_lrelu" in n for n in names), names
    assert any("pygan.instance_norm_act" in n for n in names), names


def test_ddp_wraps_an_accelerated_model(tmp_path):
    model = small_cycle_disc()
    reference = copy.deepcopy(model)
    pygan.accelerate(model)
    store = dist.FileStore(os.fspath(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        x = torch.randn(2, 3, 32, 32)
        ddp(x).square().mean().backward()
        reference(x).square().mean().backward()
        for a, b in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    finally:
        dist.destroy_process_group()


def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        pygan.accelerate(lambda x: x)
    with pytest.raises(ValueError, match="backend must be None or one of"):
        pygan.accelerate(nn.Linear(2, 2), backend="fast")
    with pytest.raises(TypeError, match="verify must be a bool"):
        pygan.accelerate(nn.Linear(2, 2), verify=1)


def test_report_prints_a_table():
    model = small_cycle_disc()
    text = str(pygan.accelerate(model))
    lines = text.splitlines()
    assert lines[0].startswith("pygan.accelerate: replaced 8, left 0 alone; verified")
    assert lines[1].split() == ["module", "was", "now"]
    assert any(line.split()[0] == "model.1" and "folded into model.0" in line for line in lines)


def test_scale_on_the_output_and_equalized_linear():
    class WSLinear(nn.Module):              # scale on the output, bias beside
        def __init__(self, i, o):
            super().__init__()
            self.linear = nn.Linear(i, o, bias=False)
            self.bias = nn.Parameter(torch.randn(o))
            self.w_mul = (2 / i) ** 0.5

        def forward(self, x):
            return self.linear(x) * self.w_mul + self.bias

    torch.manual_seed(0)
    model = nn.Sequential(WSLinear(6, 5), nn.LeakyReLU(0.2), WSLinear(5, 3))
    reference = copy.deepcopy(model)
    report = pygan.accelerate(model, backend="cpp")
    assert report["0"].was == "WSLinear [Linear * w_mul, bias beside] + LeakyReLU(0.2)", str(report)
    assert report["1"].now == "folded into 0" and report["2"].replaced
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    model.double(), reference.double()
    out, ref = model(x), reference(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0])


def test_plain_linear_chains_stay_eager_on_cpu_under_auto(monkeypatch):
    torch.manual_seed(0)
    model = S.MLPDiscriminator(20, 8)
    auto, forced = copy.deepcopy(model), copy.deepcopy(model)
    report = pygan.accelerate(auto)                      # backend None: pygan's default, auto
    assert "CPU tensors: addmm + activation" in report["disc.0.0"].now
    pygan.accelerate(forced, backend="cpp")
    calls = []
    real = pygan.ops.bias_lrelu
    monkeypatch.setattr(pygan.ops, "bias_lrelu", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(4, 20)
    torch.testing.assert_close(auto(x), model(x))
    assert calls == []                                   # addmm + LeakyReLU ran
    torch.testing.assert_close(forced(x), model(x), rtol=1e-5, atol=1e-6)
    assert len(calls) == 3                               # the fused op ran for each chain
    with pygan.ops.use_backend("cpp"):                   # a default set by the user is obeyed
        auto(x)
    assert len(calls) == 6
