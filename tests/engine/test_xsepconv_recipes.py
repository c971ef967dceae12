"""The bundled MobileNetV3-Small dw/xsep recipes follow XSepConv Sec. 4.1 and plug into the engine."""
import pytest

import leannets
from leannets.engine.recipe import list_recipes, load_recipe
from leannets.layers.xsepconv import XSepConv

DATASETS = {  # dataset key: (registered dataset, lr, epochs)
    "cifar10": ("cifar10", 0.35, 400),
    "cifar100": ("cifar100", 0.35, 400),
    "svhn": ("svhn", 0.35, 20),
    "tinyimagenet": ("tiny_imagenet", 0.15, 200),
}


@pytest.mark.parametrize("key", sorted(DATASETS))
def test_recipes_follow_paper_and_pairs_differ_only_in_model(key):
    dw, xs = load_recipe(f"mbv3_{key}_dw"), load_recipe(f"mbv3_{key}_xsep")
    name, lr, epochs = DATASETS[key]
    for r in (dw, xs):
        assert r["data"]["name"] == name and r["data"]["batch_size"] == 128
        assert r["optim"]["name"] == "sgd" and r["optim"]["momentum"] == 0.9
        assert r["optim"]["weight_decay"] == pytest.approx(6e-5) and r["optim"]["lr"] == pytest.approx(lr)
        assert r["schedule"]["name"] == "cosine" and r["schedule"]["warmup_epochs"] == 5
        assert r["train"]["epochs"] == epochs
    assert xs["model"]["name"] == dw["model"]["name"] + "_xsep"
    strip = lambda r: {k: v for k, v in r.items() if k not in ("model", "name", "description")}  # noqa: E731
    assert strip(dw) == strip(xs)
    model = leannets.create_model(xs["model"]["name"], num_classes=10)
    assert any(isinstance(m, XSepConv) for m in model.modules())
    assert not any(isinstance(m, XSepConv) for m in leannets.create_model(dw["model"]["name"]).modules())


def test_dataset_specific_augmentation():
    tiny = load_recipe("mbv3_tinyimagenet_xsep")["data"]
    assert tiny["input_size"] == 56 and tiny["crop_area"] == [0.08, 1.0] and tiny["flip"]
    assert tiny["ratio"] == pytest.approx([3 / 4, 4 / 3])
    svhn = load_recipe("mbv3_svhn_dw")["data"]
    assert svhn["svhn_extra"] and not svhn["augment"]
    cifar = load_recipe("mbv3_cifar100_xsep")["data"]
    assert cifar["crop_padding"] == 4 and cifar["flip"] and cifar["augment"]
    assert len([r for r in list_recipes() if r.startswith("mbv3_")]) == 8


def test_xsep_recipe_trains_through_the_engine():
    from leannets.engine.trainer import train

    over = {"data.name": "digits", "data.root": None, "data.batch_size": 16, "data.limit_train": 64,
            "data.limit_eval": 32, "model.name": "mobilenetv3_small_cifar_050_xsep", "train.epochs": 1,
            "train.max_steps_per_epoch": 2, "schedule.warmup_epochs": 0, "train.device": "cpu",
            "train.threads": 1, "data.num_workers": 0}
    result = train("mbv3_cifar10_xsep", overrides=over, verbose=False, progress=False, save=False)
    assert 0.0 <= result["final"]["eval_acc1"] <= 1.0
    assert result["params"] == sum(p.numel() for p in leannets.create_model(
        "mobilenetv3_small_cifar_050_xsep").parameters())
