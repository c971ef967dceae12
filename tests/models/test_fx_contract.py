"""timm's contract for every registered classifier: ``torch.fx.symbolic_trace`` gives a graph that computes what the
model computes (feature extractors, quantisation and graph tools build on it); ``torch.jit.script`` is refused with
one clear line naming the supported paths."""
from __future__ import annotations

import pytest
import torch

import leannets
from leannets.models import list_models, model_info


@pytest.mark.parametrize("name", list_models(task="classification"))
def test_fx_symbolic_trace_computes_the_same_logits(name):
    torch.manual_seed(0)
    model = leannets.create_model(name).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.rand(1, *model_info(name).input_size)
    with torch.no_grad():
        ref = model(x)  # eager may take the C kernels, the graph the plain PyTorch path: another summation order
        torch.testing.assert_close(graph(x), ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max()))


def test_a_traced_graph_keeps_the_input_checks_out_of_the_graph():
    graph = torch.fx.symbolic_trace(leannets.create_model("wavelet_vgg_cifar_small").eval())
    with torch.no_grad():  # odd sizes still go through the wrapped padding leaf at run time
        assert graph(torch.rand(2, 3, 33, 31)).shape == (2, 10)
    with pytest.raises(ValueError, match="cannot be halved"):
        graph(torch.rand(1, 3, 1, 8))


def test_torch_jit_script_is_refused_with_the_supported_paths():
    with pytest.raises(TypeError, match="torch.jit.script is not supported; use torch.jit.trace, torch.export"):
        torch.jit.script(leannets.create_model("resnet20_standard"))
