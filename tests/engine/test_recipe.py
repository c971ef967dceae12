"""Recipe schema: defaults, type and key errors, overrides, stages, task/dataset option hooks, schedules."""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from leannets.config import DataSection, Field, Recipe, StageConfig, TrainSection
from leannets.engine.optim import LRSchedule, ModelEma, build_optimizer
from leannets.engine.recipe import apply_overrides, dump_recipe, list_recipes, load_recipe, parse_override, stage_configs

BASE = {"model": {"name": "densenet_bc_cifar_6_6_6"}}


def test_resolved_recipes_are_typed_read_only_sections():
    r = load_recipe({**BASE, "train": {"epochs": 3}, "data": {"limit_train": 8}})
    assert isinstance(r, Recipe) and isinstance(r.train, TrainSection) and isinstance(r.data, DataSection)
    assert r.train.epochs == 3 and r.data.limit_train == 8 and r.task.label_smoothing == 0.0  # a task option
    assert r.train.epochs == r["train"]["epochs"]
    with pytest.raises(AttributeError, match="read-only"):
        r.train.epochs = 4
    with pytest.raises(AttributeError, match="has no key 'epoch'"):
        r.train.epoch
    stage = stage_configs(r)[0]
    assert isinstance(stage, StageConfig) and stage.stage.name == "main" and stage.train.epochs == 3
    assert load_recipe(r.to_dict()).to_dict() == r.to_dict() == yaml.safe_load(dump_recipe(r))


def test_schema_types_come_from_the_section_annotations():
    assert TrainSection.schema["epochs"] == Field(int, 1, "training epochs")
    grad_clip = TrainSection.schema["grad_clip"]
    assert grad_clip.type is float and grad_clip.nullable and grad_clip.default is None
    assert DataSection.schema["crop_area"].type is list


def test_the_old_crop_area_key_is_an_alias_with_a_deprecation_message():
    with pytest.warns(FutureWarning, match=r"data.scale is deprecated; use data.crop_area"):
        r = load_recipe({**BASE, "data": {"scale": [0.5, 1.0]}})
    assert r.data.crop_area == [0.5, 1.0] and "scale" not in r.data
    with pytest.warns(FutureWarning, match=r"stages.0.data.scale is deprecated"):
        st = stage_configs(load_recipe({**BASE, "stages": [{"data": {"scale": [0.2, 1.0]}}]}))
    assert st[0].data.crop_area == [0.2, 1.0]
    with pytest.raises(ValueError, match=r"data.scale \(deprecated\) and data.crop_area are both set"):
        load_recipe({**BASE, "data": {"scale": [0.5, 1.0], "crop_area": [0.5, 1.0]}})


def test_defaults_are_filled_and_every_bundled_recipe_validates():
    r = load_recipe(BASE)
    assert r["optim"]["name"] == "sgd" and r["data"]["name"] == "digits" and r["task"]["name"] == "classification"
    assert r["task"]["label_smoothing"] == 0.0  # declared by the classification task
    names = list_recipes()
    assert {"compare_default", "densenet_cifar10"} <= set(names)
    for name in names:
        assert load_recipe(name)["name"] == name


@pytest.mark.parametrize("bad, match", [
    ({"optim": {"lrr": 0.1}}, r"optim\.lrr'.*Did you mean 'lr'"),
    ({"optim": {"lr": "fast"}}, r"'optim\.lr' expects float, got str"),
    ({"optim": {"name": "rmsprop"}}, r"'optim\.name' must be one of \['sgd', 'adam', 'adamw'\]"),
    ({"train": {"epochs": 1.5}}, r"'train\.epochs' expects int"),
    ({"train": {"epochs": True}}, r"'train\.epochs' expects int, got bool"),
    ({"trian": {}}, r"unknown recipe key 'trian'.*train"),
    ({"model": {}}, r"model\.name is required"),
    ({"schedule": {"milestones": [75, 50]}}, r"milestones must be increasing percents"),
    ({"data": {"name": "digits", "label_type": "fine"}}, r"unknown recipe key 'data\.label_type'"),
    ({"task": {"name": "classification", "sigma": 25}}, r"unknown recipe key 'task\.sigma'"),
    ({"task": {"name": "clasification"}}, r"unknown task 'clasification'.*classification"),
    ({"stages": [{"epochs": 1, "freez": ["stem"]}]}, r"'stages\.0\.freez'.*freeze"),
    ({"stages": [{"optim": {"lr": "x"}}]}, r"'stages\.0\.optim\.lr' expects float"),
    ({"stages": [{"model": {"name": "x"}}]}, r"'stages\.0\.model'"),
])
def test_schema_errors_name_the_key(bad, match):
    recipe = {**BASE, **bad} if "model" not in bad else {**bad}
    with pytest.raises(ValueError, match=match):
        load_recipe(recipe)


def test_dataset_specific_options_are_accepted_only_for_that_dataset():
    r = load_recipe({**BASE, "data": {"name": "cifar100", "root": "/x", "label_type": "coarse"}})
    assert r["data"]["label_type"] == "coarse"
    r = load_recipe({**BASE, "data": {"name": "cifar100", "root": "/x"}})
    assert r["data"]["label_type"] == "fine"


def test_overrides_parse_yaml_and_reach_nested_and_stage_keys():
    assert parse_override("optim.lr=0.001") == ("optim.lr", 1e-3)
    assert load_recipe(BASE, ["optim.lr=1e-3"])["optim"]["lr"] == 1e-3  # YAML 1.1 reads 1e-3 as a string
    assert parse_override("model.kwargs={growth_rate: 4}") == ("model.kwargs", {"growth_rate": 4})
    with pytest.raises(ValueError, match="key=value"):
        parse_override("optim.lr")
    raw = {**BASE, "stages": [{"epochs": 1}, {"epochs": 2}]}
    r = load_recipe(raw, ["optim.lr=0.5", "stages.1.optim.lr=0.01", "model.kwargs.growth_rate=4"])
    st = stage_configs(r)
    assert st[0]["optim"]["lr"] == 0.5 and st[1]["optim"]["lr"] == 0.01
    assert st[1]["train"]["epochs"] == 2 and r["model"]["kwargs"] == {"growth_rate": 4}
    with pytest.raises(ValueError, match="stages.5"):
        apply_overrides(raw, {"stages.5.epochs": 1})


def test_stage_configs_merge_overrides_over_the_top_level():
    r = load_recipe({**BASE, "optim": {"lr": 0.1, "weight_decay": 5e-4}, "train": {"epochs": 7},
                     "stages": [{"name": "warm", "freeze": ["stem"], "optim": {"lr": 0.01}},
                                {"epochs": 3, "schedule": {"name": "cosine"}}]})
    s1, s2 = stage_configs(r)
    assert s1["stage"] == {"index": 0, "name": "warm", "freeze": ["stem"]}
    assert s1["optim"] == {**s2["optim"], "lr": 0.01} and s1["optim"]["weight_decay"] == 5e-4
    assert s1["train"]["epochs"] == 7 and s2["train"]["epochs"] == 3 and s2["schedule"]["name"] == "cosine"
    flat = stage_configs(load_recipe(BASE))
    assert len(flat) == 1 and flat[0]["stage"]["freeze"] == []


def test_task_options_hook_validates_a_new_task():
    from leannets.engine.task import Task, register_task

    @register_task("_recipe_test_task")
    class _T(Task):
        options = {"sigma": Field(float, 25.0, "noise"), "mode": Field(str, "a", "m", choices=("a", "b"))}

    r = load_recipe({**BASE, "task": {"name": "_recipe_test_task", "sigma": 50}})
    assert r["task"] == {"name": "_recipe_test_task", "sigma": 50.0, "mode": "a"}
    with pytest.raises(ValueError, match=r"'task\.mode' must be one of"):
        load_recipe({**BASE, "task": {"name": "_recipe_test_task", "mode": "c"}})
    st = stage_configs(load_recipe({**BASE, "task": {"name": "_recipe_test_task"},
                                    "stages": [{"task": {"mode": "b"}}, {}]}))
    assert st[0]["task"]["mode"] == "b" and st[1]["task"]["mode"] == "a"


def _sched(name: str, total: int = 100, spe: int = 10, **kw) -> LRSchedule:
    data = {**BASE.get("data", {}), "val_fraction": 0.1}  # a plateau watches a held-out split
    cfg = load_recipe({**BASE, "data": data, "schedule": {"name": name, **kw}})["schedule"]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return LRSchedule(opt, cfg, 0.1, total, spe)


def test_cosine_with_linear_warmup_and_floor():
    s = _sched("cosine", warmup_epochs=1, min_lr=5e-5)
    assert s.lr_at(0) == 0.0 and math.isclose(s.lr_at(5), 0.05)
    assert math.isclose(s.lr_at(10), 0.1)
    assert math.isclose(s.lr_at(55), 5e-5 + (0.1 - 5e-5) * 0.5)
    assert math.isclose(s.lr_at(100), 5e-5)
    s.step(5)
    assert math.isclose(s.optimizer.param_groups[0]["lr"], 0.05)


def test_multistep_at_percent_milestones():
    s = _sched("multistep", total=200, milestones=[10, 25, 75, 90], gamma=0.2)
    assert [round(s.lr_at(i), 10) for i in (0, 19, 20, 49, 50, 150, 180)] == \
        [0.1, 0.1, 0.02, 0.02, 0.004, 0.0008, 0.00016]


def test_plateau_halves_after_patience_and_survives_state_dict():
    s = _sched("plateau", factor=0.5, patience=2)
    for loss in (1.0, 0.9, 0.95, 0.95):
        assert not s.epoch_end(loss)
    assert s.epoch_end(0.95)  # third epoch without improvement
    assert math.isclose(s.lr_at(50), 0.05)
    t = _sched("plateau", factor=0.5, patience=2)
    t.load_state_dict(s.state_dict())
    assert math.isclose(t.lr_at(50), 0.05) and t.best == 0.9


def test_optimizers_and_ema():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    cfg = load_recipe({**BASE, "optim": {"name": "sgd", "nesterov": True, "weight_decay": 1e-4,
                                         "no_decay_norm_bias": True}})["optim"]
    opt = build_optimizer(model, cfg)
    assert opt.defaults["nesterov"] and [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    adam = build_optimizer(model, load_recipe({**BASE, "optim": {"name": "adam", "lr": 1e-3}})["optim"])
    assert isinstance(adam, torch.optim.Adam)
    assert adam.defaults["betas"] == (0.9, 0.999) and adam.param_groups[0]["lr"] == 1e-3
    ema = ModelEma(model, 0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    before = ema.module[0].weight.clone()
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.9 * before + 0.1 * model[0].weight)


def test_an_any_size_dataset_without_input_size_gets_the_models_native_size(tmp_path, capsys):
    from PIL import Image

    from leannets._log import configure
    from leannets.engine.task import create_task

    configure(0)  # the notice goes through the library console handler that the CLI sets up
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / split / c / "0.png")
    base = {"model": {"name": "resnet20_standard"}, "data": {"name": "imagefolder", "root": str(tmp_path)}}
    splits = create_task(stage_configs(load_recipe(base))[-1]).build_data()
    assert splits.input_size == (3, 32, 32) and splits.train[0][0].shape == (3, 32, 32)  # not imagefolder's 224
    assert "using resnet20_standard's native input size 32×32" in capsys.readouterr().err
    fixed = load_recipe({**base, "data": {**base["data"], "input_size": 40}})
    assert create_task(stage_configs(fixed)[-1]).build_data().input_size == (3, 40, 40)
    assert "native input size" not in capsys.readouterr().err


def test_the_multiception_recipes_of_one_dataset_differ_only_in_the_model():
    """38 recipe files, one per paper-table row (docs/multiception.md says why): per dataset they may differ
    in nothing but the model, as the paper's "consistent settings" require."""
    groups: dict[str, list[dict]] = {}
    for name in list_recipes():
        if name.startswith("multiception_") and "ablation" not in name:
            resolved = load_recipe(name).to_dict()
            for key in ("name", "description"):
                resolved.pop(key)
            resolved.pop("model")
            groups.setdefault(name.split("_")[1], []).append(resolved)
    assert sum(len(g) for g in groups.values()) == 35 and set(groups) == {"cifar10", "cifar100", "stl10",
                                                                          "imagenet32"}
    for dataset, recipes in groups.items():
        assert all(r == recipes[0] for r in recipes), f"{dataset}: multiception recipes differ beyond the model"


def test_a_recipe_inherits_its_base_and_errors_name_the_file_and_key(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "common.yaml").write_text(
        "seed: 3\nmodel: {name: resnet20_standard}\ndata: {name: digits, batch_size: 8, flip: false}\n"
        "optim: {lr: 0.05}\n")
    (tmp_path / "mine.yaml").write_text("base: common\ndata: {batch_size: 16}\ntrain: {epochs: 2}\n")
    r = load_recipe(tmp_path / "mine.yaml")
    assert (r.seed, r.data.batch_size, r.data.flip, r.optim.lr, r.train.epochs) == (3, 16, False, 0.05, 2)
    assert "base" not in r.to_dict() and r.name == "mine"
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match=r"loop\.yaml: key base forms a cycle"):
        load_recipe(tmp_path / "loop.yaml")
    (tmp_path / "lost.yaml").write_text("base: nowhere\n")
    with pytest.raises(ValueError, match=r"lost\.yaml: key base names 'nowhere'"):
        load_recipe(tmp_path / "lost.yaml")


def test_the_multiception_recipes_are_a_few_bases_and_a_model_each():
    from leannets.engine.recipe import list_recipes, recipe_path

    names = [n for n in list_recipes() if n.startswith("multiception_")]
    bases = {yaml.safe_load(recipe_path(n).read_text())["base"] for n in names}
    assert len(names) == 38 and bases == {"multiception_cifar10", "multiception_cifar100", "multiception_imagenet32",
                                          "multiception_stl10"}
    a, b = load_recipe("multiception_cifar10_resnet20_standard"), load_recipe("multiception_cifar10_resnet20_dsconv")
    assert {k: v for k, v in a.to_dict().items() if k not in ("name", "description", "model")} == \
        {k: v for k, v in b.to_dict().items() if k not in ("name", "description", "model")}
    assert a.optim.weight_decay == 2e-4 and a.train.epochs == 300 and b.model.kwargs == {"conv_type": "dsconv_authors"}


@pytest.mark.parametrize("key, value", [("train.grad_clip", -1), ("train.eval_every", 0), ("train.threads", -2),
                                        ("data.limit_train", 0), ("optim.momentum", 1.5), ("schedule.factor", 2.0),
                                        ("checkpoint.every", -1), ("data.eval_batch_size", 0)])
def test_numeric_keys_out_of_range_are_one_clear_error(key, value):
    """grad_clip=-1 would train by gradient ascent, eval_every=0 divide by zero: refused, naming the key."""
    with pytest.raises(ValueError, match=rf"recipe key .*{key.split('.')[1]}.* must be"):
        load_recipe("multiception_cifar10_resnet20_standard", {key: value})


def test_set_values_and_recipe_files_read_yaml_1_2_scalars(tmp_path):
    """YAML 1.1 made seed=010 octal 8, 1:30 sexagesimal 90 and `off` the bool False (a listed amp choice)."""
    r = load_recipe("multiception_cifar10_resnet20_standard", ["seed=010", "train.amp=off", "optim.lr=1e-3"])
    assert (r.seed, r.train.amp, r.optim.lr) == (10, "off", 0.001)
    with pytest.raises(ValueError, match=r"train\.epochs"):
        load_recipe("multiception_cifar10_resnet20_standard", ["train.epochs=1:30"])
    (tmp_path / "r.yaml").write_text("base: multiception_cifar10_resnet20_standard\nseed: 010\ntrain: {amp: off}\n")
    r = load_recipe(tmp_path / "r.yaml")
    assert (r.seed, r.train.amp) == (10, "off")
