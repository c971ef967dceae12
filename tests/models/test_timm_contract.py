"""The contracts timm's own model tests hold every model to, over **every** registered classifier: forward and
backward reach every parameter; the cfg names real layers of the right width; ``reset_classifier(0)`` and
``pre_logits`` widths; ``features_only`` / ``forward_intermediates`` / hooking ``feature_info`` by name; grad
checkpointing equal in train mode with backward; ``torch.jit.trace``; channels_last equal to NCHW.
(``torch.fx``: test_fx_contract.py; ``num_features`` on every model: test_timm_api.py.)

Inputs are the smallest size each model accepts (batch 2); models over 20 M parameters run under ``-m slow``."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

import leannets
from leannets.models import list_models


def _params(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in leannets.create_model(name).parameters())


CLASSIFIERS = [pytest.param(n, marks=pytest.mark.slow) if _params(n) > 20e6 else n
               for n in list_models(task="classification")]


def _input(model: nn.Module, n: int = 2) -> torch.Tensor:
    size = max(32, model.min_input_size)
    size = -(-size // max(1, model.size_divisor)) * max(1, model.size_divisor)
    return torch.randn(n, model.in_chans, size, size, generator=torch.Generator().manual_seed(0))


def _model(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return leannets.create_model(name, **kw)


def _modules(names: str | tuple[str, ...] | None) -> list[str]:
    return [] if names is None else [names] if isinstance(names, str) else list(names)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_and_the_cfg(name):
    model = _model(name).train()
    x = _input(model)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    loss = out.square().mean()
    if getattr(model, "uses_transform_loss", False):  # the WAE decoder is reached by the stage-1 transform loss
        parts = model(x, parts=True, reconstruct=True)
        loss = loss + model.transform_loss(x, parts).total
    loss.backward()
    unreached = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unreached, f"no gradient reaches {unreached[:5]}"
    cfg = model.pretrained_cfg
    assert {"input_size", "mean", "std", "crop_pct", "interpolation", "first_conv", "classifier", "pool_size",
            "num_classes"} <= set(cfg)
    assert len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0] == model.in_chans
    for conv in _modules(cfg["first_conv"]):
        assert model.get_submodule(conv).weight.shape[1] % model.in_chans == 0, conv  # wavelet subbands: k × in_chans
    classifiers = _modules(cfg["classifier"])
    assert classifiers and [model.get_submodule(c).out_features for c in classifiers] == \
        [model.num_classes] * len(classifiers)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_reset_classifier_pre_logits_features_and_intermediates(name):
    model = _model(name).eval()
    x = _input(model)
    info = model.feature_info
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        final, maps = model.forward_intermediates(x)
        hooked: list[torch.Tensor] = []
        handle = model.get_submodule(info.module_name(-1)).register_forward_hook(
            lambda m, i, o: hooked.append(o.clone())) if info.module_name(-1) != "forward_features" else None
        model(x)
        model.reset_classifier(0)
        pooled = model(x)
    assert feats.shape[1] == model.num_features and pre.shape == (2, model.head_hidden_size)
    assert pooled.shape == (2, model.head_hidden_size) and model.get_classifier() is not None
    torch.testing.assert_close(final, feats)
    assert [(m.shape[1], x.shape[-1] // m.shape[-1]) for m in maps] == list(zip(info.channels(), info.reduction()))
    torch.testing.assert_close(maps[-1], feats)
    if handle is not None:  # the final entry names the submodule that returns forward_features' output
        handle.remove()
        torch.testing.assert_close(hooked[-1], feats)
    features = leannets.create_model(name, features_only=True).eval()
    with torch.no_grad():
        listed = features(x)
    assert [m.shape[1] for m in listed] == features.feature_info.channels()
    assert [x.shape[-1] // m.shape[-1] for m in listed] == features.feature_info.reduction()


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_grad_checkpointing_matches_in_train_mode_with_backward(name):
    model = _model(name).train()
    twin = copy.deepcopy(model)
    twin.set_grad_checkpointing()
    x = _input(model)
    torch.manual_seed(1)  # the same draws for dropout / shake-shake in both (the checkpoint replays its own)
    out = model(x)
    torch.manual_seed(1)
    out_twin = twin(x)
    torch.testing.assert_close(out_twin, out, rtol=1e-4, atol=1e-5)
    out.square().mean().backward()
    out_twin.square().mean().backward()
    for (n, a), b in zip(model.named_parameters(), twin.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=n)
    assert any("forward" in m.__dict__ for m in twin.modules()), "set_grad_checkpointing checkpointed nothing"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_jit_trace_and_channels_last_compute_the_same_logits(name):
    model = _model(name).eval()
    x = _input(model)
    with torch.no_grad():
        ref = model(x)
        tol = dict(rtol=1e-3, atol=1e-4 * max(1.0, float(ref.abs().max())))
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.testing.assert_close(traced(x), ref, **tol)
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        torch.testing.assert_close(cl(x.contiguous(memory_format=torch.channels_last)), ref, **tol)
