"""The one registry class behind models, datasets, tasks, conv types, activations and recipes."""
from __future__ import annotations

import pytest

from leannets.data._registry import DATASETS
from leannets.engine.recipe import RECIPES
from leannets.engine.task import TASKS
from leannets.layers.create_act import ACTS
from leannets.layers.create_conv import CONV_TYPES
from leannets.models._registry import MODELS
from leannets.registry import Registry


def test_register_get_and_list_with_a_pattern():
    reg: Registry[int] = Registry("widget", recipe_key="widget.name")
    reg.register("alpha", 1)
    reg.decorator("beta")(2)
    assert reg.get("alpha") == 1 and "beta" in reg and len(reg) == 2
    assert reg.names() == ["alpha", "beta"] and reg.names("b*") == ["beta"]


def test_a_taken_name_raises_even_for_the_same_object():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match="widget 'alpha' is already registered"):
        reg.register("alpha", 1)


def test_unknown_names_suggest_close_ones_and_list_the_known():
    reg: Registry[int] = Registry("widget", recipe_key="widget.name")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match=r"unknown widget 'alpah' \(recipe key widget.name\)\. "
                                         r"Did you mean 'alpha'\? Known: alpha"):
        reg.get("alpah")


def test_the_loader_runs_once_before_the_first_lookup():
    calls = []
    reg: Registry[int] = Registry("widget", loader=lambda: calls.append(reg.register(f"w{len(calls)}", 1)))
    assert calls == []
    assert reg.names() == ["w0"] and "w0" in reg and reg.get("w0") == 1 and calls == [1]


@pytest.mark.parametrize("registry, name", [(MODELS, "densenet121"), (DATASETS, "cifar10"), (TASKS, "denoising"),
                                            (CONV_TYPES, "xsepconv"), (ACTS, "xunit"), (RECIPES, "dxnet_cifar10")])
def test_all_six_registries_share_the_class(registry, name):
    assert isinstance(registry, Registry) and name in registry
    with pytest.raises(ValueError, match="already registered"):
        registry.register(name, registry.get(name))
    with pytest.raises(ValueError, match="Did you mean"):
        registry.get(name + "x")
