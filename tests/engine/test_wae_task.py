"""WAE training through the one engine: the 3-stage recipe, frozen WAE in stage 2, resume, baselines."""
import copy

import pytest
import torch

from leannets.engine import load_recipe, stage_configs, train
from leannets.engine.checkpoint import load_checkpoint
from leannets.engine.tasks.wae import WAETask
from leannets.engine.trainer import Trainer

FREEZE_CLASSIFIER = ["backbone", "fusion_net", "head_l", "head_lh", "fc", "fusion_fc"]


def _recipe(model="wae_vgg_cifar_small", stages=True, steps=2):
    r = {"name": "wae_test", "seed": 3, "task": {"name": "wae"}, "model": {"name": model},
         "data": {"name": "digits", "batch_size": 16, "eval_batch_size": 64, "limit_train": 64, "limit_eval": 32},
         "optim": {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
         "train": {"epochs": 1, "max_steps_per_epoch": steps, "threads": 1, "progress": False},
         "checkpoint": {"every": 1, "every_steps": 1}}
    if stages:
        r["stages"] = [
            {"name": "wae", "task": {"mode": "transform"}, "freeze": FREEZE_CLASSIFIER, "optim": {"lr": 1e-5}},
            {"name": "classifier", "task": {"mode": "classify"}, "freeze": ["wae"]},
            {"name": "joint", "task": {"mode": "joint"}, "optim": {"lr": 1e-3}},
        ]
    return r


def _split(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _changed(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_three_stages_train_the_right_parts_and_freeze_the_wae(tmp_path, monkeypatch):
    seen = []
    original = WAETask.training_step

    def spy(self, model, batch):
        wae = model.wae
        seen.append((self.mode, all(not p.requires_grad for p in wae.parameters()),
                     [None if p.grad is None else p.grad.clone() for p in wae.parameters()]))
        return original(self, model, batch)

    monkeypatch.setattr(WAETask, "training_step", spy)
    train(_recipe(), out_dir=tmp_path, verbose=False)
    s1, s2, s3 = (load_checkpoint(tmp_path / f"epoch_000{i}.pt")["model"] for i in (1, 2, 3))
    # Stage 1 trains the WAE only; stage 2 leaves it bit-identical; stage 3 trains everything.
    assert _changed(_split(s1, "wae."), _split(s2, "wae.")) is False
    assert _changed(_split(s1, "backbone."), _split(s2, "backbone."))
    assert _changed(_split(s2, "wae."), _split(s3, "wae.")) and _changed(_split(s2, "fc."), _split(s3, "fc."))
    modes = [m for m, _, _ in seen]
    assert modes == ["transform"] * 2 + ["classify"] * 2 + ["joint"] * 2
    stage2 = [s for s in seen if s[0] == "classify"]
    assert all(frozen for _, frozen, _ in stage2)
    # No new gradient reaches the frozen WAE during stage 2 (left-over stage-1 grads stay as they were).
    for a, b in zip(stage2[0][2], stage2[1][2]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert not any(frozen for m, frozen, _ in seen if m == "joint")


def test_stage_one_leaves_the_classifier_untouched(tmp_path):
    r = _recipe()
    r["stages"] = r["stages"][:1]
    trainer = Trainer(load_recipe(r), tmp_path, verbose=False)
    trainer.build_model()
    init = copy.deepcopy(trainer.model.state_dict())
    trainer.run()
    final = trainer.model.state_dict()
    assert not _changed(_split(init, "backbone."), _split(final, "backbone."))
    assert not _changed(_split(init, "fc."), _split(final, "fc."))
    assert _changed(_split(init, "wae.encoder."), _split(final, "wae.encoder."))
    assert _changed(_split(init, "wae.decoder."), _split(final, "wae.decoder."))


def test_resume_inside_stage_two_is_bit_identical(tmp_path, monkeypatch):
    ref = train(_recipe(steps=3), out_dir=tmp_path / "ref", verbose=False)
    calls = {"n": 0}
    original = WAETask.training_step

    def crash(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # stage 2, second step
            raise KeyboardInterrupt
        return original(self, model, batch)

    monkeypatch.setattr(WAETask, "training_step", crash)
    with pytest.raises(KeyboardInterrupt):
        train(_recipe(steps=3), out_dir=tmp_path / "cut", verbose=False)
    ck = load_checkpoint(tmp_path / "cut")
    assert (ck["loop"]["stage"], ck["loop"]["step"]) == (1, 1)  # inside stage 2
    monkeypatch.setattr(WAETask, "training_step", original)
    resumed = train(resume=tmp_path / "cut", verbose=False)
    a = load_checkpoint(ref["checkpoint"])["model"]
    b = load_checkpoint(resumed["checkpoint"])["model"]
    assert a.keys() == b.keys() and not _changed(a, b)
    assert resumed["final"]["eval_acc1"] == ref["final"]["eval_acc1"]


@pytest.mark.parametrize("model", ["wae_vgg_cifar_small", "decomp_vgg_cifar_small", "wavelet_vgg_cifar_small",
                                   "halfres_vgg_cifar_small", "ilonly_vgg_cifar_small", "vgg_cifar_small"])
def test_every_variant_trains_one_step(model):
    r = _recipe(model, stages=False, steps=1)
    r["task"]["mode"] = "joint" if model.startswith(("wae_", "ilonly_")) else "classify"
    trainer = Trainer(load_recipe(r), None, verbose=False)
    trainer.build_model()
    init = copy.deepcopy(trainer.model.state_dict())
    result = trainer.run()
    assert 0.0 <= result["final"]["eval_acc1"] <= 1.0
    assert result["history"][0]["train_loss"] == pytest.approx(result["history"][0]["train_loss"])  # finite
    assert _changed(init, trainer.model.state_dict())
    if model.startswith(("wae_", "ilonly_")):
        assert "eval_recon_mse" in result["final"] and 0 <= result["final"]["eval_energy_ratio"] <= 1


def test_transform_modes_need_a_decoder():
    r = _recipe("wavelet_vgg_cifar_small", stages=False, steps=1)
    r["task"]["mode"] = "transform"
    with pytest.raises(ValueError, match=r"task.mode='transform' needs a WAE model with a decoder"):
        train(r, save=False, verbose=False)


@pytest.mark.parametrize("name", ["wae_vgg16_imagenet", "wae_resnet50_imagenet", "wae_cifar_small",
                                  "wae_cifar_small_baseline"])
def test_bundled_recipes_validate(name):
    stages = stage_configs(load_recipe(name, {"data.root": "/data"}))
    if name == "wae_cifar_small_baseline":
        assert [c["task"]["mode"] for c in stages] == ["classify"]
        return
    assert [c["task"]["mode"] for c in stages] == ["transform", "classify", "joint"]
    assert stages[0]["stage"]["freeze"] == FREEZE_CLASSIFIER and stages[1]["stage"]["freeze"] == ["wae"]
    assert stages[2]["optim"]["lr"] == 1e-4 and stages[2]["task"]["transform_weight"] == 0.001
    assert all(c["optim"]["momentum"] == 0.9 and c["optim"]["weight_decay"] == 5e-4 for c in stages)
    if "imagenet" in name:
        assert stages[1]["optim"]["lr"] == (0.1 if "resnet50" in name else 0.01)
        assert stages[1]["data"]["batch_size"] == 256 and stages[0]["data"]["batch_size"] == 4


def test_wrap_wae_puts_a_front_end_before_any_classifier_and_trains_in_three_stages(tmp_path):
    """leannets.wrap_wae on a registered ResNet-50 (smoke size): I_L only, then with a user's fusion net; and a
    recipe's model.wrap_wae through the multi-stage WAE task."""
    import leannets

    backbone = leannets.create_model("resnet50", num_classes=10)
    wrapped = leannets.wrap_wae(backbone)
    assert wrapped.backbone is backbone and wrapped.num_classes == 10 and wrapped.fusion_net is None
    assert isinstance(backbone.fc, torch.nn.Identity) and wrapped.uses_transform_loss  # its own head dropped
    x = torch.rand(2, 3, 64, 64)
    out = wrapped(x, parts=True, reconstruct=True)
    assert out.logits.shape == (2, 10) and out.i_l.shape == (2, 3, 32, 32) and out.recon.shape == x.shape
    fused = leannets.wrap_wae(leannets.create_model("resnet20_standard"),
                              fusion_net=leannets.create_model("resnet20_standard"))
    assert fused(torch.rand(2, 3, 32, 32)).shape == (2, 10) and fused.head_lh is not None
    with pytest.raises(ValueError, match="takes 1 input channels"):
        leannets.wrap_wae(leannets.create_model("resnet20_standard", in_chans=1))
    r = _recipe()
    r["model"] = {"name": "resnet50", "wrap_wae": {}}
    r["data"] = {**r["data"], "batch_size": 4, "limit_train": 8, "limit_eval": 4, "image_size": 64}
    r["stages"][0]["freeze"] = ["backbone", "head_l", "fc"]
    r["stages"][1]["freeze"] = ["wae"]
    res = train(r, out_dir=tmp_path, verbose=False)
    assert [h["stage_name"] for h in res["history"]] == ["wae", "classifier", "joint"]
