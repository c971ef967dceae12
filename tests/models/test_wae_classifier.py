"""WAE classifiers, baselines and backbones: structure, outputs and the paper's MAC figures."""
import pytest
import torch
import torch.nn.functional as F

import leannets
from leannets.analysis.fold_bn import fold_bn
from leannets.analysis.profile import count_macs, count_params
from leannets.analysis.speedup import mac_breakdown, paper_bound
from leannets.models._base import Classifier
from leannets.models.wae_classifier import VARIANTS, WAEClassifier, WAEOutput

SMALL = "vgg_cifar_small"
G = 1e9


@pytest.mark.parametrize("prefix", list(VARIANTS))
def test_every_small_variant_builds_and_returns_plain_logits(prefix):
    model = leannets.create_model(f"{prefix}_{SMALL}", num_classes=7)
    assert isinstance(model, Classifier)
    x = torch.randn(2, 3, 32, 32)
    for mode in (True, False):
        model.train(mode)
        y = model(x)
        assert isinstance(y, torch.Tensor) and y.shape == (2, 7)
    out = model(x, parts=True)
    assert isinstance(out, WAEOutput)
    fusion = VARIANTS[prefix][1]
    assert (out.s_lh is not None) == fusion
    expected = (out.s_l + out.s_lh) / 2 if fusion else out.s_l
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(model(x), out.logits)
    # timm API: forward_head(forward_features(x)) is forward(x).
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), out.logits)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape[0] == 2


def test_front_ends_feed_the_documented_inputs():
    x = torch.randn(1, 3, 32, 32)
    wav = leannets.create_model(f"wavelet_{SMALL}").eval()
    i_l, i_h = wav.decompose(x)
    assert i_l.shape == (1, 3, 16, 16) and i_h.shape == (1, 9, 16, 16)  # cA | cH, cV, cD
    ca = leannets.create_model(f"caonly_{SMALL}").eval()
    assert ca.fusion_net is None and ca.head_lh is None
    torch.testing.assert_close(ca.decompose(x)[0], i_l)  # cA only: the same approximation, no fusion
    half = leannets.create_model(f"halfres_{SMALL}").eval()
    i_l, i_h = half.decompose(x)
    assert i_h is None and i_l.shape == (1, 3, 16, 16)
    torch.testing.assert_close(i_l.mean(), x.mean(), atol=0.05, rtol=0)  # a resize keeps the mean
    wae = leannets.create_model(f"wae_{SMALL}")
    assert wae.uses_transform_loss and wae.fusion_net.feature_chs == wae.backbone.feature_chs // 4
    assert not leannets.create_model(f"decomp_{SMALL}").uses_transform_loss


def test_classification_loss_is_the_sum_of_both_cross_entropies():
    model = leannets.create_model(f"wae_{SMALL}")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    out = model(x, parts=True, reconstruct=True)
    loss = model.classification_loss(out, y)
    torch.testing.assert_close(loss, F.cross_entropy(out.s_l, y) + F.cross_entropy(out.s_lh, y))
    assert out.recon.shape == x.shape
    t = model.transform_loss(x, out)
    assert t.total > 0
    with pytest.raises(ValueError, match="no WAE decoder"):
        leannets.create_model(f"wavelet_{SMALL}")(x, parts=True, reconstruct=True)


def test_reset_classifier_resets_both_scores():
    model = leannets.create_model(f"wae_{SMALL}")
    model.reset_classifier(3)
    out = model(torch.randn(1, 3, 32, 32), parts=True)
    assert out.s_l.shape == out.s_lh.shape == (1, 3)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="unknown backbone 'vgg99'"):
        WAEClassifier("vgg99")
    with pytest.raises(ValueError, match="unknown front_end 'fft'"):
        WAEClassifier(SMALL, front_end="fft")
    with pytest.raises(ValueError, match="resize.*fusion=False"):
        WAEClassifier(SMALL, front_end="resize", fusion=True)
    model = leannets.create_model(f"wae_{SMALL}")
    with pytest.raises(ValueError, match=r"wae_vgg_cifar_small: expected input .*H, W >= 16"):
        model(torch.randn(1, 3, 8, 8))


def test_inference_merges_the_two_linear_heads_into_one_and_follows_their_weights():
    model = leannets.create_model(f"wae_{SMALL}").eval()
    for fc in (model.fc, model.fusion_fc):
        torch.nn.init.normal_(fc.weight)
        torch.nn.init.normal_(fc.bias)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert model._merged_head_applies()
        expected = model(x, parts=True).logits  # the two heads, averaged
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
        assert "_merged_head" in model.__dict__
        model.fusion_fc.weight.mul_(-2.0)  # an in-place update: the merged weight is computed again
        torch.testing.assert_close(model(x), model(x, parts=True).logits, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(x), expected)
        model.train()
        assert not model._merged_head_applies()
    model.eval()
    assert not model._merged_head_applies()  # gradients wanted for the head weights: the two layers run
    model.requires_grad_(False)
    assert model._merged_head_applies()
    hidden = leannets.create_model("wae_vgg16", num_classes=5).eval()  # hidden fc layers: nothing to merge
    with torch.no_grad():
        assert not hidden._merged_head_applies()


def test_bn_folding_is_exact_for_wae_models():
    model = leannets.create_model(f"wae_{SMALL}").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    folded = fold_bn(model, x)
    assert folded.folded_bn_pairs == 12  # 6 backbone + 6 fusion convs
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


# --- MAC figures of the paper (Table 1 and the complexity discussion), within 3% -------------------

@pytest.fixture(scope="module")
def vgg_figures():
    torch.set_num_threads(1)
    x224 = torch.randn(1, 3, 224, 224)
    vgg = leannets.create_model("vgg16").eval()
    full_conv = count_macs(vgg.features, x224)
    full = count_macs(vgg, x224)
    half = count_macs(leannets.create_model("halfres_vgg16").eval(), x224)
    parts = mac_breakdown(leannets.create_model("wae_vgg16"), (3, 224, 224))
    return full_conv, full, half, parts


def test_vgg16_macs_at_224_and_112(vgg_figures):
    full_conv, full, half, _ = vgg_figures
    assert full_conv == 15_346_630_656  # the 13 convs
    assert full_conv / G == pytest.approx(15.36, rel=0.03)
    assert full / G == pytest.approx(15.36, rel=0.03)  # + fc layers (15.47 G)
    assert half / G == pytest.approx(3.89, rel=0.03)
    # "VGG16 (112)" is the standard VGG16 at 112²: convs 3.837 G + fc 4096-4096 on the 4×4 (ceil-mode) map 0.054 G.
    assert half == full_conv // 4 + (512 * 4 * 4 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert half / G == pytest.approx(3.89, abs=0.005)


def test_wae_vgg16_macs_and_encoder_counted_separately(vgg_figures):
    full_conv, _, _, parts = vgg_figures
    # The encoder: three 3×3 convs (3→16, 16→16, 16→16) at 224² + the 16→6 stride-2 branch conv at 112².
    assert parts["front_end"] == 224 * 224 * 16 * 9 * (3 + 16 + 16) + 112 * 112 * 6 * 16 * 9
    assert parts["front_end"] / G == pytest.approx(0.264, abs=1e-3)
    # The paper's 4.11 G is the classification network alone (the encoder is left out).
    assert parts["total_without_front_end"] / G == pytest.approx(4.11, rel=0.03)
    assert parts["total"] / G == pytest.approx(4.38, abs=0.01)
    assert parts["total_without_front_end"] / G == pytest.approx(4.11, abs=0.01)  # 4.118: convs + Caffe fc heads
    assert parts["backbone"] == full_conv // 4  # VGG16 at 112 has exactly ¼ of the conv MACs
    # Bound: backbone + ¼-width fusion net against the full-res convs.
    assert paper_bound() == pytest.approx(3.76, abs=0.005)
    assert full_conv / (parts["backbone"] + parts["fusion"]) == pytest.approx(3.76, rel=0.03)


def test_resnet50_reference_figures():
    model = leannets.create_model("resnet50").eval()
    assert count_params(model)[0] == 25_557_032
    assert count_macs(model, torch.randn(1, 3, 224, 224)) / G == pytest.approx(4.09, rel=0.01)
    v1 = leannets.create_model("resnet50_v1").eval()
    assert count_params(v1)[0] == 25_557_032  # the stride moves, no parameter does
    assert count_macs(v1, torch.randn(1, 3, 224, 224)) / G == pytest.approx(3.86, abs=0.005)
    block = v1.stages[1][0]
    assert block.conv1[0].stride == (2, 2) and block.conv2[0].stride == (1, 1)  # v1: stride on the first 1×1
    block = model.stages[1][0]
    assert block.conv1[0].stride == (1, 1) and block.conv2[0].stride == (2, 2)  # v1.5: stride on the 3×3
    wae = leannets.create_model("wae_resnet50")
    assert wae.backbone.version == wae.fusion_net.version == "1"
    assert leannets.create_model("wae_resnet50", backbone_kwargs={"version": "1.5"}).backbone.version == "1.5"
    with pytest.raises(ValueError, match="unknown version '2'"):
        leannets.create_model("resnet50", version="2")
    parts = mac_breakdown(wae, (3, 224, 224))
    assert parts["backbone"] / G == pytest.approx(4.09 / 4, rel=0.06)
    assert parts["fusion"] < parts["backbone"] / 12


def test_vgg16_is_torchvisions_vgg16_and_vgg16_bn_adds_batchnorm():
    plain, bn = leannets.create_model("vgg16"), leannets.create_model("vgg16_bn")
    assert count_params(plain)[0] == 138_357_544  # torchvision's vgg16
    assert count_params(bn)[0] == 138_365_992  # torchvision's vgg16_bn
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 13


def _deploy_net_params() -> int:
    """Parameters of the authors' wae_vgg.prototxt, layer by layer (convs and fcs with bias, no BN scale)."""
    def conv(i, o):
        return 9 * i * o + o

    def fc(i, o):
        return i * o + o
    encoder = conv(3, 16) + 2 * conv(16, 16) + 2 * conv(16, 3)
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    ca = sum(conv(i, o) for i, o in zip([3] + widths[:-1], widths))
    ch_widths = [w // 4 for w in widths]
    ch = sum(conv(i, o) for i, o in zip([3] + ch_widths[:-1], ch_widths))
    heads = fc(512 * 16, 1024) + fc(1024, 1024) + fc(1024, 1000)  # pool5 is 4×4 at 112² (Caffe rounds up)
    fusion = fc((512 + 128) * 16, 2048) + fc(2048, 2048) + fc(2048, 1000)
    return encoder + ca + ch + heads + fusion


def test_wae_vgg16_is_the_authors_deploy_net():
    model = leannets.create_model("decomp_vgg16")  # the deploy net: no decoder
    assert count_params(model)[0] == _deploy_net_params() == 53_324_582
    assert count_params(leannets.create_model("wae_vgg16"))[0] / 1e6 == pytest.approx(53.3, abs=0.05)
    assert model.backbone.features(torch.randn(1, 3, 112, 112)).shape[-2:] == (4, 4)  # ceil-mode pools
    assert model.head_l.mlp[0].in_features == 8192 and model.head_lh.mlp[0].in_features == 10240
    # bn_CA / bn_CH: BatchNorm without scale and shift on I_L and I_H, before the two networks.
    assert not model.bn_l.affine and not model.bn_h.affine and model.bn_h.num_features == 3
    floor = leannets.create_model("decomp_vgg16", backbone_kwargs={"ceil_mode": False}, head_pool=3)
    assert count_params(floor)[0] / 1e6 == pytest.approx(40.5, abs=0.1)  # the previous floor-mode geometry
    assert leannets.create_model(f"halfres_{SMALL}").bn_l is None  # the resized image is not a decomposition


def test_input_norm_normalises_il_and_ih_but_not_what_the_transform_loss_sees():
    model = leannets.create_model(f"wae_{SMALL}").train()
    x = 50 * torch.randn(8, 3, 32, 32) + 100  # raw-pixel scale, as the authors feed it
    seen = {}

    def keep(key):
        def hook(module, inputs, output):
            seen[key] = inputs[0].detach()
        return hook
    model.backbone.features[0].register_forward_hook(keep("l"))
    model.fusion_net.features[0].register_forward_hook(keep("h"))
    out = model(x, parts=True, reconstruct=True)
    for key in ("l", "h"):
        torch.testing.assert_close(seen[key].mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(seen[key].var((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    i_l, i_h = model.decompose(x)
    torch.testing.assert_close(out.i_l, i_l)  # the decomposition (and the energy loss) is before the BN
    assert out.i_l.abs().mean() > 5 * seen["l"].abs().mean()
    with pytest.raises(ValueError, match="input_norm=False"):
        WAEClassifier(SMALL, front_end="resize", fusion=False, input_norm=True)


def test_vgg_options():
    plain = leannets.create_model("vgg_cifar_small", batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert leannets.create_model("vgg_cifar_small")(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="unknown cfg"):
        leannets.models.vgg.VGG("vgg7")


def test_num_classes_zero_returns_pre_logits():
    model = leannets.create_model(f"wae_{SMALL}", num_classes=0).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model(x)
    assert feats.shape == (2, 128 + 128 + 32)  # h_l (128) and h_lh (128 + 32), global-pool heads
    torch.testing.assert_close(feats, model.forward_head(model.forward_features(x), pre_logits=True))
