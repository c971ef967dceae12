"""The dense layers' BatchNorm calls: the ``leannets::batch_norm_train`` op where it applies, else the module; the
op path trains as the module does (outputs, gradients, running statistics)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import leannets
from leannets.engine.distributed import CPUSyncBatchNorm
from leannets.layers import dispatch, kernels
from leannets.layers.norm import batch_norm

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="the C kernels are not built here")


def _map(channels: int, layout=torch.channels_last) -> torch.Tensor:
    return (torch.randn(6, channels, 8, 8) * 2 + 1).contiguous(memory_format=layout)


@needs_kernels
@pytest.mark.parametrize("momentum", [0.1, None])
def test_op_path_trains_as_the_module(momentum: float | None) -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(12, momentum=momentum)
    nn.init.uniform_(bn.weight, 0.5, 1.5), nn.init.normal_(bn.bias)
    ref = copy.deepcopy(bn)
    for _ in range(2):
        x = _map(12).requires_grad_(True)
        xr = x.detach().clone().requires_grad_(True)
        assert dispatch.batch_norm_op_applies(bn, x)
        out, want = batch_norm(bn, x), ref(xr)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(want)
        for got, exp in zip(torch.autograd.grad(out, (x, bn.weight, bn.bias), g),
                            torch.autograd.grad(want, (xr, ref.weight, ref.bias), g)):
            torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-5)
    for name, buf in ref.named_buffers():
        torch.testing.assert_close(getattr(bn, name), buf, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 2


def test_module_path_where_the_op_does_not_apply() -> None:
    x = _map(12)
    bn = nn.BatchNorm2d(12)
    assert not dispatch.batch_norm_op_applies(nn.BatchNorm2d(16), _map(16))  # PyTorch's kernel is fast there
    assert not dispatch.batch_norm_op_applies(copy.deepcopy(bn).eval(), x)  # running statistics: the module
    assert not dispatch.batch_norm_op_applies(bn, _map(12, torch.contiguous_format))
    assert not dispatch.batch_norm_op_applies(CPUSyncBatchNorm(12), x)  # synchronised: its own forward
    assert not dispatch.batch_norm_op_applies(nn.ReLU(), x)
    assert not dispatch.batch_norm_op_applies(bn, x.half())
    with dispatch.reference_path():
        assert not dispatch.batch_norm_op_applies(bn, x)
    relu = nn.ReLU()
    torch.testing.assert_close(batch_norm(relu, x - 1), F.relu(x - 1))  # any other module is called


@needs_kernels
@pytest.mark.parametrize("name", ["dxnet_cifar_4_4_4", "densenet_bc_cifar_6_6_6"])
def test_dense_models_train_the_same_on_either_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One training step on either path: the same loss and running statistics, and the same gradients up to the
    float32 rounding these nets amplify at initialisation (a ReLU input near 0 may flip; measured ~1e-3 relative to
    a float64 step on either path; a wrong gradient would differ by O(1))."""
    torch.manual_seed(0)
    fast = leannets.create_model(name, num_classes=10).train().to(memory_format=torch.channels_last)
    plain = copy.deepcopy(fast)
    x = torch.randn(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (8,))
    calls = []
    applies = dispatch.batch_norm_op_applies
    monkeypatch.setattr(dispatch, "batch_norm_op_applies", lambda m, t: calls.append(applies(m, t)) or calls[-1])
    losses = []
    for model in (fast, plain):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(float(loss.detach()))
        monkeypatch.setattr(dispatch, "batch_norm_op_applies", lambda m, t: False)
    assert any(calls) and losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (k, a), b in zip(fast.named_buffers(), plain.buffers()):
        assert (a.float() - b.float()).abs().max() <= 1e-5 * max(1.0, float(b.float().abs().max())), k
    got = torch.cat([p.grad.flatten() for p in fast.parameters()])
    want = torch.cat([p.grad.flatten() for p in plain.parameters()])
    assert float((got - want).norm() / want.norm()) <= 5e-2
