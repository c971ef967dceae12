"""The ResNet-20 Multiception recipe end to end on the real CIFAR-10 subset (skipped without it)."""
import math

import pytest

from leannets.engine.trainer import train


@pytest.mark.slow  # ~20 s on a shared 2-core machine (data loading + two steps + eval)
def test_resnet20_multiception_recipe_trains_on_real_cifar10(shared_data):
    overrides = {"data.root": str(shared_data / "cifar10-subset"), "data.batch_size": 32, "data.limit_train": 64,
                 "data.limit_eval": 64, "data.num_workers": 0, "train.epochs": 1, "train.threads": 1,
                 "train.progress": False}
    result = train("multiception_cifar10_resnet20_multiception", overrides, verbose=False, save=False)
    assert result["params"] == 189_434
    final = result["final"]
    assert math.isfinite(final["eval_loss"]) and 0.0 <= final["eval_acc1"] <= 1.0
    assert result["global_step"] == 2 and math.isfinite(result["history"][-1]["train_loss"])
