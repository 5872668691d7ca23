"""pygan.ops.selftest: every compiled backend against the reference, cached per device and build;
a failing kernel is reported FAIL and ``auto`` then routes its op to the next candidate."""

import subprocess
import sys
import warnings

import pytest
import torch

import pygan.ops as ops
from pygan.ops import _registry

st = ops.selftest   # the module (callable as selftest())


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYGAN_CACHE_DIR", str(tmp_path / "cache"))
    yield
    for (op, backend) in list(_registry.disabled_backends()):
        _registry.enable_backend_for_op(op, backend)


def test_every_compiled_cpu_backend_passes_on_every_op_and_case():
    report = ops.selftest("cpu", use_cache=False)
    assert report["backends"] == st.compiled_backends(torch.device("cpu"))
    assert "cpp" in report["backends"]          # CI builds pygan._C: a missing build is a failure
    seen = {(r["op"], r["backend"], r["layout"]) for r in report["results"]}
    assert seen == {(op, b, lay) for op in ops.OPS for b in report["backends"] for lay in ("nchw", "nhwc")}
    bad = [r for r in report["results"] if not r["ok"]]
    assert not bad, st.format_table(report)
    assert all(r["max_error"] <= st.TOLERANCE for r in report["results"])


@pytest.mark.parametrize("target", ["pixel_norm", "pixel_norm_bwd"])
def test_broken_kernel_is_reported_and_auto_routes_its_op_to_the_reference(monkeypatch, target):
    """A kernel off by 1% (forward, or only its backward op) fails; after apply(), auto runs the
    reference for that op with exactly one warning, and the other ops keep their kernel."""
    real = getattr(torch.ops.pygan, target)

    def broken(*args):
        out = real(*args)
        return out * 1.01

    monkeypatch.setattr(torch.ops.pygan, target, broken)
    report = ops.selftest("cpu", backends=["cpp"], use_cache=False)
    rows = {(r["op"], r["layout"]): r for r in report["results"]}
    assert not rows[("pixel_norm", "nchw")]["ok"]
    assert "error" in rows[("pixel_norm", "nchw")]["reason"]
    # bias_lrelu_pixel_norm's double backward calls pixel_norm_bwd too; the rest must pass
    users = {"pixel_norm", "bias_lrelu_pixel_norm"} if target.endswith("_bwd") else {"pixel_norm"}
    assert all(r["ok"] for r in report["results"] if r["op"] not in users)
    table = st.format_table(report)
    row = next(line for line in table.splitlines() if line.startswith("pixel_norm"))
    assert "FAIL" in row

    disabled = st.apply(report)
    assert set(disabled) == {(op, "cpp") for op in users}
    assert disabled[("pixel_norm", "cpp")] == "pixel_norm nchw: " + rows[("pixel_norm", "nchw")]["reason"]
    x = torch.randn(2, 5, 3, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ops.use_backend("auto"):
            for _ in range(3):
                y = ops.pixel_norm(x)
            assert _registry.resolve("bias_lrelu", None, x.device) == "cpp"
    torch.testing.assert_close(y, ops.pixel_norm_reference(x), rtol=0, atol=0)
    msgs = [str(w.message) for w in caught if "pixel_norm" in str(w.message)]
    assert len(msgs) == 1 and "cpp" in msgs[0] and "self-test" in msgs[0]


def test_a_crashing_kernel_is_a_fail_with_its_reason(monkeypatch):
    def crash(*args):
        raise RuntimeError("illegal memory access (simulated)")

    monkeypatch.setattr(torch.ops.pygan, "fade_in", crash)
    report = ops.selftest("cpu", backends=["cpp"], ops=["fade_in"], use_cache=False)
    assert report["results"] and not any(r["ok"] for r in report["results"])
    assert all("illegal memory access" in r["reason"] for r in report["results"])


def test_result_is_cached_per_device_and_build(monkeypatch, tmp_path):
    # the cache, not the kernels (the test above runs every op and backend): a whole, un-narrowed
    # run over one op and one backend, 1 s instead of 30
    monkeypatch.setattr(ops, "OPS", ("pixel_norm",))
    monkeypatch.setattr(st, "compiled_backends", lambda device: ["cpp"])
    first = ops.selftest("cpu")
    assert {(r["op"], r["backend"]) for r in first["results"]} == {("pixel_norm", "cpp")}
    assert not first["cached"] and st.cache_path(torch.device("cpu")).is_file()
    assert str(st.cache_path(torch.device("cpu"))).startswith(str(tmp_path / "cache"))
    again = ops.selftest("cpu")
    assert again["cached"] and again["results"] == first["results"]
    monkeypatch.setattr(st, "build_id", lambda: "another-build")
    assert not ops.selftest("cpu")["cached"]


def test_guard_disables_failing_pairs_on_cuda_and_does_nothing_on_cpu(monkeypatch):
    fake = dict(device="Fake GPU", build_id="x", backends=["cuda", "triton"], seconds=0.1, cached=False,
                results=[dict(op="fade_in", case="fade_in", backend="cuda", layout="nhwc", ok=False,
                              max_error=0.5, reason="error forward 0.5 > 0.0001"),
                         dict(op="fade_in", case="fade_in", backend="triton", layout="nhwc", ok=True,
                              max_error=1e-7, reason=None)])
    calls = []
    monkeypatch.setattr(st, "selftest", lambda device, **kw: calls.append(device) or fake)
    assert st.guard(torch.device("cpu")) == {} and not calls
    assert set(st.guard(torch.device("cuda", 0))) == {("fade_in", "cuda")}
    assert set(_registry.disabled_backends()) == {("fade_in", "cuda")}


def test_cases_are_declared_for_every_registered_op_and_a_missing_one_is_an_error():
    for op in ops.OPS:
        assert st.cases_for(op)
    with pytest.raises(LookupError, match="selftest_cases"):
        st.cases_for("no_such_op")


def test_command_line_prints_the_table(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pygan.ops.selftest", "--device", "cpu", "--backend", "cpp",
                           "--op", "pixel_norm", "--no-cache"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pixel_norm" in done.stdout and "ok" in done.stdout and "RuntimeWarning" not in done.stderr
