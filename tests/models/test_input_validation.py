import pytest
import torch

import leannets


def test_wrong_channel_count_names_model_and_shapes():
    model = leannets.create_model("densenet_bc_cifar_6_6_6")
    with pytest.raises(ValueError) as err:
        model(torch.randn(1, 1, 32, 32))
    msg = str(err.value)
    assert "densenet_bc_cifar_6_6_6" in msg and "(N, 3, H, W)" in msg and "(1, 1, 32, 32)" in msg


def test_too_small_input_is_rejected():
    model = leannets.create_model("densenet121")
    with pytest.raises(ValueError, match=r"H, W >= 32.*\(1, 3, 16, 16\)"):
        model(torch.randn(1, 3, 16, 16))


def test_non_4d_input_is_rejected():
    model = leannets.create_model("densenet_bc_cifar_6_6_6")
    with pytest.raises(ValueError, match=r"got \(3, 32, 32\)"):
        model(torch.randn(3, 32, 32))
