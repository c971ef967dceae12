import pytest
import torch

import leannets
from leannets.models import ModelInfo, model_cfg, register_model


def test_list_models_pattern_and_sorted():
    names = leannets.list_models("densenet*")
    assert "densenet121" in names and "densenet_bc_cifar_16_16_16" in names
    assert names == sorted(names)
    assert all(n.startswith("densenet") for n in names)
    assert leannets.list_models("no_such_model*") == []


def test_list_models_task_filter():
    for name in leannets.list_models(task="classification"):
        assert leannets.model_info(name).task == "classification"


def test_unknown_model_lists_closest_names():
    with pytest.raises(ValueError) as err:
        leannets.create_model("densenet12")
    assert "densenet121" in str(err.value)
    with pytest.raises(ValueError, match="Did you mean"):
        leannets.model_info("densenet_bc_cifar_16_16")


def test_model_info_fields():
    info = leannets.model_info("densenet121")
    assert isinstance(info, ModelInfo)
    assert info.input_size == (3, 224, 224)
    assert info.num_classes == 1000
    assert "Huang" in info.paper and "Table" in info.source
    assert info.as_dict()["family"] == "densenet"


def test_every_registered_model_cites_a_paper():
    for name in leannets.list_models():
        info = leannets.model_info(name)
        assert info.paper.strip(), name
        assert info.source.strip(), name
        assert len(info.input_size) == 3, name


def test_create_model_overrides_and_bad_kwargs():
    model = leannets.create_model("densenet_bc_cifar_6_6_6", num_classes=7, in_chans=1, growth_rate=4)
    assert model.fc.out_features == 7 and model.in_chans == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="bad arguments"):
        leannets.create_model("densenet_bc_cifar_6_6_6", no_such_option=3)


def test_register_twice_is_an_error():
    def dup(**kw):
        return torch.nn.Identity()

    dup.__name__ = "densenet121"
    with pytest.raises(ValueError, match="already registered"):
        register_model(paper="x", source="y", cfg=model_cfg(first_conv="conv"))(dup)


def test_register_rejects_unknown_task():
    with pytest.raises(ValueError, match="task must be one of"):
        register_model(paper="x", source="y", cfg=model_cfg(first_conv="conv"), task="segmentation")


def test_register_needs_a_complete_cfg():
    with pytest.raises(ValueError, match=r"cfg lacks \['classifier', 'crop_pct'"):
        register_model(paper="x", source="y", cfg={"mean": None, "std": None, "first_conv": "c", "interpolation": "x"})


@pytest.mark.parametrize("name", ["densenet_bc_cifar_6_6_6"])
def test_classifier_interface(name):
    model = leannets.create_model(name, growth_rate=4).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.dim() == 4 and feats.shape[1] == model.num_features
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    assert torch.allclose(model.forward_head(feats), model(x), atol=1e-6)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_any_backbone_with_xsepconv_gets_the_network_wide_padding_schedule():
    from leannets.layers.padding import padding_schedule

    model = leannets.create_model("resnet20_standard", conv_type="xsepconv")
    schedule = padding_schedule(model)
    assert len(schedule) == 9  # one 2×2 layer per basic block
    assert [idx for _, idx, _ in schedule] == list(range(1, 10))
    assert [d for _, _, d in schedule[:4]] == ["right_bottom", "left_top", "left_bottom", "right_top"]
    assert schedule[-1][2] == "groups"  # N % 4 == 1: the last layer uses per-group symmetric padding


def test_every_registered_name_is_written_out_in_the_source_so_grep_finds_it():
    from pathlib import Path

    source = "".join(p.read_text(encoding="utf-8") for p in (Path(leannets.__file__).parent / "models").glob("*.py"))
    missing = [n for n in leannets.list_models() if f'"{n}"' not in source and f"def {n}(" not in source]
    assert not missing, f"registered in a loop or under a computed name (grep cannot find them): {missing}"
    assert len(leannets.list_models()) == 95
