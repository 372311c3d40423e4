"""The private torch APIs the PyTorch rules rely on, and the torch range they are known to work on.

The range lives in pyproject.toml (``[tool.gradsight] torch-private-api``); each API is
checked against a hand-written reference, so a torch release that changes one fails here
with its name, not somewhere inside a guided-backprop result.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.version import Version  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _config() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def test_installed_torch_is_in_the_stated_range() -> None:
    conf = _config()
    tested = SpecifierSet(conf["tool"]["gradsight"]["torch-private-api"])
    installed = Version(torch.__version__.split("+")[0])
    assert installed in tested, (
        f"torch {installed} is outside the range the rules' private APIs are known to work on ({tested}); "
        "run this file and the rule tests, then widen [tool.gradsight] torch-private-api in pyproject.toml."
    )
    extra = next(r for r in conf["project"]["optional-dependencies"]["torch"] if r.startswith("torch"))
    allowed = SpecifierSet(extra[len("torch"):])
    assert all(Version(v) in allowed for v in ("2.1", "2.13")), "the torch extra must admit the tested range"


def test_leaky_relu_private_ops_match_a_reference() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    torch.testing.assert_close(torch._C._nn.leaky_relu(x, 0.1), torch.where(x > 0, x, 0.1 * x))
    y = x.clone()
    out = torch._C._nn.leaky_relu_(y, 0.2)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(y, torch.where(x > 0, x, 0.2 * x))


def test_backward_kernels_match_a_reference() -> None:
    g = torch.tensor([1.0, -2.0, 3.0, -4.0, 5.0])
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    out = torch.relu(x)
    torch.testing.assert_close(torch.ops.aten.threshold_backward(g, out, 0), g * (out > 0))
    slope = 0.1
    ref = g * torch.where(x > 0, 1.0, slope)
    torch.testing.assert_close(torch.ops.aten.leaky_relu_backward(g, x, slope, False), ref)
    result = torch.where(x > 0, x, slope * x)
    torch.testing.assert_close(torch.ops.aten.leaky_relu_backward(g, result, slope, True), ref)


def test_function_mode_sees_functional_and_module_calls() -> None:
    from torch.overrides import TorchFunctionMode

    seen: list[str] = []

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    with Mode():
        torch.nn.ReLU()(torch.ones(2))
        torch.nn.functional.leaky_relu(torch.ones(2), 0.1)
    assert "relu" in seen and "leaky_relu" in seen


def test_forward_hook_always_call_runs_after_an_exception() -> None:
    calls: list[int] = []

    class Boom(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    m = Boom()
    h = m.register_forward_hook(lambda *_: calls.append(1), always_call=True)
    with pytest.raises(RuntimeError):
        m(torch.ones(1))
    h.remove()
    assert calls == [1]
