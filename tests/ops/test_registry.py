"""Backend selection: set_backend, use_backend, PYGAN_BACKEND, available_backends, and errors."""

import os
import subprocess
import sys

import pytest
import torch

import pygan.ops as ops
from pygan.ops import _registry


def test_available_backends_reports_every_backend_with_a_reason():
    report = ops.available_backends()
    assert set(report) == {"reference", "cpp", "cuda", "triton", "auto"}
    assert report["reference"].available and report["auto"].available
    for name, st in report.items():
        assert isinstance(st.available, bool) and st.reason, name
    if not torch.cuda.is_available():
        assert not report["cuda"].available


def test_use_backend_routes_every_op_and_restores(monkeypatch):
    seen = []
    real_resolve = _registry.resolve

    def spy(op, backend, device):
        seen.append((op, real_resolve(op, backend, device)))
        return seen[-1][1]

    monkeypatch.setattr(_registry, "resolve", spy)
    before = ops.get_backend()
    x = torch.randn(4, 3, 4, 4)
    with ops.use_backend("reference"):
        assert ops.get_backend() == "reference"
        ops.pixel_norm(x), ops.bias_lrelu(x), ops.bias_lrelu_pixel_norm(x), ops.minibatch_std(x)
        ops.fade_in(x[:, :, :2, :2], x, 0.5), ops.gradient_penalty(x)
    assert ops.get_backend() == before
    assert seen == [(op, "reference") for op in ("pixel_norm", "bias_lrelu", "bias_lrelu_pixel_norm",
                                                 "minibatch_std", "fade_in", "gradient_penalty")]
    seen.clear()
    ops.pixel_norm(x, backend="reference")
    assert seen == [("pixel_norm", "reference")]


def test_use_backend_restores_after_an_error():
    before = ops.get_backend()
    with pytest.raises(ZeroDivisionError):
        with ops.use_backend("reference"):
            1 / 0
    assert ops.get_backend() == before


def test_resolve_auto_on_cpu():
    expected = "cpp" if ops.available_backends()["cpp"] else "reference"
    assert _registry.resolve("pixel_norm", "auto", torch.device("cpu")) == expected


def test_resolve_auto_on_cuda_follows_the_committed_preference(monkeypatch):
    """auto on CUDA tensors: the per-op winner of gpu_preference.json, CUDA C++ for ops it does
    not list, the other GPU backend when the preferred one cannot run, and the reference with
    exactly one warning when neither can. (Routing only: probes are faked, nothing launches.)"""
    up = {"cuda": True, "triton": True}
    for name in up:
        monkeypatch.setitem(_registry._probes, name,
                            lambda name=name: _registry.BackendStatus(up[name], f"{name} faked"))
    monkeypatch.setattr(_registry, "_gpu_preference", {"fade_in": "triton"})
    monkeypatch.setattr(_registry, "_warned", set())
    cuda = torch.device("cuda")
    assert _registry.resolve("fade_in", "auto", cuda) == "triton"
    assert _registry.resolve("pixel_norm", "auto", cuda) == "cuda"
    up["triton"] = False
    assert _registry.resolve("fade_in", "auto", cuda) == "cuda"
    up["triton"], up["cuda"] = True, False
    assert _registry.resolve("pixel_norm", "auto", cuda) == "triton"
    up["triton"] = False
    with pytest.warns(RuntimeWarning, match="no compiled GPU backend can run here") as record:
        assert _registry.resolve("pixel_norm", "auto", cuda) == "reference"
        assert _registry.resolve("fade_in", "auto", cuda) == "reference"
    assert len(record) == 1


def test_gpu_preference_file_is_read(tmp_path, monkeypatch):
    """The registry keeps only cuda/triton entries of gpu_preference.json; no file means {}."""
    ops_dir = tmp_path / "ops"
    ops_dir.mkdir()
    monkeypatch.setattr(_registry, "__file__", str(ops_dir / "_registry.py"))
    assert _registry._load_gpu_preference() == {}
    (ops_dir / "gpu_preference.json").write_text(
        '{"preference": {"fade_in": "triton", "pixel_norm": "cuda", "bias_lrelu": "cpu"}}')
    assert _registry._load_gpu_preference() == {"fade_in": "triton", "pixel_norm": "cuda"}


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="backend must be one of 'reference', 'cpp', 'cuda', 'triton', 'auto'; got 'fast'"):
        ops.set_backend("fast")


def test_requested_backend_that_cannot_run_raises_with_reason():
    if ops.available_backends()["cuda"]:
        pytest.skip("the cuda backend is available here, so requesting it does not fail")
    with pytest.raises(RuntimeError, match="pygan backend 'cuda' was requested but cannot run: "):
        ops.pixel_norm(torch.randn(2, 3), backend="cuda")


def test_cpp_backend_refuses_other_devices():
    if not ops.available_backends()["cpp"]:
        pytest.skip("cpp backend unavailable: " + ops.available_backends()["cpp"].reason)
    with pytest.raises(ValueError, match="pygan backend 'cpp' runs on cpu tensors; got tensors on meta"):
        ops.pixel_norm(torch.randn(2, 3, device="meta"), backend="cpp")


def _run_python(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_environment_variable_sets_the_default():
    r = _run_python("import pygan.ops as o; print(o.get_backend())", PYGAN_BACKEND="reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "reference"


def test_bad_environment_variable_is_a_clear_error():
    r = _run_python("import pygan", PYGAN_BACKEND="gpu")
    assert r.returncode != 0 and "backend must be one of" in r.stderr


def test_import_without_extension_warns_once_and_uses_reference(tmp_path):
    """A copy of the Python package without the compiled .so imports, warns once, and works."""
    import shutil
    import pygan
    src = os.path.dirname(pygan.__file__)
    dst = tmp_path / "pygan"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    code = ("import warnings, torch\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import pygan.ops as o\n"
            "    y = o.pixel_norm(torch.randn(2, 3, 4, 4))\n"
            "    y = o.minibatch_std(torch.randn(4, 3, 4, 4))\n"
            "msgs = [str(x.message) for x in w if 'pygan' in str(x.message)]\n"
            "print(len(msgs), o.available_backends()['cpp'].available)\n"
            "print(msgs[0])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    count, cpp_available = r.stdout.splitlines()[0].split()
    assert count == "1" and cpp_available == "False"
    assert "only the reference backend is available" in r.stdout


def test_missing_autograd_registration_is_an_error_in_this_suite():
    """pyproject's filterwarnings turns PyTorch's "autograd kernel was not registered" warning
    into an error, so a compiled op without autograd cannot pass silently (DESIGN.md §3)."""
    lib = torch.library.Library("pygan_suite_check", "FRAGMENT")
    lib.define("no_autograd(Tensor x) -> Tensor")
    lib.impl("no_autograd", lambda x: x * 2, "CPU")
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(UserWarning, match="autograd kernel was not registered"):
        torch.ops.pygan_suite_check.no_autograd(x).sum().backward()


@pytest.mark.parametrize("name", ["cpp", "cuda", "triton"])
def test_backend_probes_trace_under_fullgraph_compile(name):
    """resolve() runs the requested backend's probe on every op call, so the probe must be
    traceable by torch.compile(fullgraph=True) (a dispatcher query per call was not: "Unsupported
    torch.* op returned non-Tensor" for backend="cuda" on a GPU). The CUDA probe reaches that
    query here too, whenever pygan._C was built with CUDA kernels."""
    def f(x):
        return x + 1 if _registry.status(name) else x - 1

    expected = 1.0 if ops.available_backends()[name] else -1.0
    out = torch.compile(f, fullgraph=True, backend="eager")(torch.zeros(2))
    assert torch.equal(out, torch.full((2,), expected))


def test_set_backend_changes_what_runs(monkeypatch):
    """set_backend decides which implementation runs (a set_backend that changed nothing
    survived the suite): "reference" runs the reference function, a compiled backend does not."""
    pixel_norm_module = ops._pixel_norm   # (pygan.ops.pixel_norm is the function)
    calls = []
    real = pixel_norm_module.pixel_norm_reference
    monkeypatch.setattr(pixel_norm_module, "pixel_norm_reference",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    before = ops.get_backend()
    x = torch.randn(2, 3, 4, 4)
    try:
        ops.set_backend("reference")
        assert ops.get_backend() == "reference"
        ops.pixel_norm(x)
        assert calls == [1]
        compiled = "cpp" if ops.available_backends()["cpp"] else "triton"
        ops.set_backend(compiled)
        assert ops.get_backend() == compiled
        ops.pixel_norm(x)
        assert calls == [1]
    finally:
        ops.set_backend(before)
    assert ops.get_backend() == before


def test_ops_tests_run_with_at_least_two_threads():
    """The C++ kernels' at::parallel_for splits run only with more than one thread; a
    session-wide set_num_threads(1) in the metric tests' conftest once leaked into everything
    collected after it (tests/conftest.py's _ops_threads fixture and the per-test metric
    fixture keep it out)."""
    assert torch.get_num_threads() >= 2


def test_required_backends_fail_the_session_with_the_reason(tmp_path):
    """PYGAN_REQUIRE_BACKENDS: a required backend that cannot run stops the session with an
    error naming it and the registry's reason (instead of its tests turning into skips); an
    unknown name is an error too."""
    env = {**os.environ, "PYGAN_REQUIRE_BACKENDS": "cpp,cuda,nonsense", "PYGAN_QUIET_IMPORT": "1"}
    if torch.cuda.is_available():
        env["PYGAN_REQUIRE_BACKENDS"] = "cpp,nonsense"
    test_file = os.path.join(os.path.dirname(__file__), "test_registry.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           f"{test_file}::test_use_backend_restores_after_an_error"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "'nonsense' is not a backend" in text
    if not torch.cuda.is_available():
        assert f"cuda: {ops.available_backends()['cuda'].reason}" in text
    env["PYGAN_REQUIRE_BACKENDS"] = ",".join(n for n in ("cpp", "triton") if ops.available_backends()[n])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                           f"{test_file}::test_use_backend_restores_after_an_error"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
