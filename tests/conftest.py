import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
os.environ.setdefault("MPLBACKEND", "Agg")
# train.amp=auto measures bf16 on CPUs that have it natively: the suite trains the same way on every machine
os.environ["LEANNETS_CPU_BF16"] = "0"


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` when present (skips otherwise: it is never required)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


def _randomize_bn(model: torch.nn.Module, seed: int = 0, linear: bool = False) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters; returns ``model``.

    Fresh BNs are identities in eval mode, so BN folding, fused paths and exports would pass even
    when they ignore the statistics. ``linear=True`` also gives linear layers unit-scale weights and
    random biases, so outputs are O(1) and cannot hide behind near-zero logits.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            elif linear and isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


@pytest.fixture
def randomize_bn():
    """The function ``randomize_bn(model, seed=0, linear=False) -> model`` (see :func:`_randomize_bn`)."""
    return _randomize_bn


@pytest.fixture(scope="session")
def tiny_classifier_checkpoints(tmp_path_factory) -> list[Path]:
    """Checkpoints of DxNet-4-4-4 and DenseNet-BC-6-6-6 trained 2 steps on embedded digits (one per session)."""
    from leannets.engine import train

    root = tmp_path_factory.mktemp("tiny_ckpts")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ckpts = []
    for sub, name in (("dx", "dxnet_cifar_4_4_4"), ("dn", "densenet_bc_cifar_6_6_6")):
        recipe = {"name": f"tiny-{name}", "seed": 0, "model": {"name": name},
                  "data": {"name": "digits", "batch_size": 16, "limit_train": 32, "limit_eval": 32},
                  "train": {"epochs": 1, "max_steps_per_epoch": 2, "progress": False}}
        ckpts.append(Path(train(recipe, out_dir=root / sub, verbose=False)["checkpoint"]))
    torch.set_num_threads(threads)
    return ckpts
