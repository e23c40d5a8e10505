"""Every registered model builds, runs forward and backward at MNIST and CIFAR shapes, and has its published size.

Parametrized over `models.list_models()` (as timm's tests are), so a new model is tested the moment it is
registered.
"""

import pytest
import torch

from tunelab import models
from tunelab.models import ModelError


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("in_chans,img_size,classes", [(1, 28, 10), (3, 32, 100)])
def test_forward_backward(name, in_chans, img_size, classes):
    torch.manual_seed(0)
    model = models.build(name, num_classes=classes, in_chans=in_chans, img_size=img_size)
    x = torch.randn(2, in_chans, img_size, img_size)
    out = model(x)
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    head = models.head_parameters(model)
    assert head and head[0].shape[0] == classes  # the classifier is found and sized for the dataset


def _params(name, classes=10, in_chans=3, img_size=32):
    with torch.device("meta"):
        return models.count_parameters(models.build(name, num_classes=classes, in_chans=in_chans, img_size=img_size))


# name, classes, input px, exact count, published figure and where it comes from
PUBLISHED = [
    ("resnet20", 10, 32, 269_722, "He et al. 2016, Table 6: 0.27 M"),
    ("resnet32", 10, 32, 464_154, "He et al. 2016, Table 6: 0.46 M"),
    ("resnet56", 10, 32, 853_018, "He et al. 2016, Table 6: 0.85 M"),
    ("resnet110", 10, 32, 1_727_962, "He et al. 2016, Table 6: 1.7 M"),
    ("wrn16_4", 10, 32, 2_748_890, "Zagoruyko & Komodakis 2016, Table 4: WRN-16-4 2.7 M"),
    ("wrn28_10", 10, 32, 36_479_194, "Zagoruyko & Komodakis 2016, Table 4: WRN-28-10 36.5 M"),
    ("resnet18", 10, 32, 11_173_962, "CIFAR ResNet-18 (kuangliu/pytorch-cifar): 11.17 M with 10 classes"),
    ("resnet18", 100, 32, 11_220_132, "CIFAR ResNet-18 with 100 classes: 11.2 M"),
    ("resnet50", 1000, 224, 25_557_032, "He et al. 2016, ResNet-50 on ImageNet: 25.6 M"),
    ("efficientnet_b0", 1000, 224, 5_288_548, "Tan & Le 2019, EfficientNet-B0: 5.3 M"),
    ("tf_efficientnet_lite0", 1000, 224, 4_652_008, "TF EfficientNet-Lite0 model card: 4.7 M"),
    ("vit_tiny", 1000, 224, 5_717_416, "Touvron et al. 2021 (DeiT-Ti / ViT-Ti/16): 5.7 M"),
    ("vit_small", 1000, 224, 22_050_664, "Touvron et al. 2021 (DeiT-S / ViT-S/16): 22 M"),
]


@pytest.mark.parametrize("name,classes,px,exact,source", PUBLISHED, ids=[f"{p[0]}-{p[1]}" for p in PUBLISHED])
def test_parameter_counts_match_published(name, classes, px, exact, source):
    assert _params(name, classes, img_size=px) == exact, source


def test_resnet20_count_by_hand():
    # convs 432 + 6*2,304 + (4,608 + 5*9,216) + (18,432 + 5*36,864) = 267,696; BN 2*(16+6*16+6*32+6*64) = 1,376;
    # fc 64*10+10 = 650 (option-A shortcuts have no parameters).
    assert _params("resnet20") == 267_696 + 1_376 + 650


def test_cnn_parameter_count_follows_its_layers():
    # conv 1->32 3x3 (320) + conv 32->64 3x3 (18,496) + dense 64*5*5->256 (409,856) + dense 256->10 (2,570)
    assert _params("cnn", 10, 1, 28) == 320 + 18_496 + 409_856 + 2_570
    # at 32 px the flattened map is 6x6
    assert _params("cnn", 100, 3, 32) == 896 + 18_496 + (64 * 36 * 256 + 256) + (256 * 100 + 100)


def test_small_image_adaptations_keep_spatial_resolution():
    r18 = models.build("resnet18", 10, 3, 32)
    assert r18.conv1.kernel_size == (3, 3) and r18.conv1.stride == (1, 1) and isinstance(r18.maxpool, torch.nn.Identity)
    assert r18.forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == 4  # 32 / 8, not 1
    eff = models.build("tf_efficientnet_lite0", 10, 3, 32)
    assert eff.forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == 4
    vit = models.build("vit_tiny", 10, 3, 32)
    assert vit.patch_embed.proj.kernel_size == (4, 4) and vit.patch_embed.num_patches == 64
    big = models.build("resnet18", 10, 3, 224)  # at the weights' resolution: the ImageNet layout
    assert big.conv1.kernel_size == (7, 7) and not isinstance(big.maxpool, torch.nn.Identity)


def test_unknown_model_names_the_choices():
    with pytest.raises(ModelError, match="unknown model 'resnet9000'.*cnn.*resnet20.*timm/<name>"):
        models.build("resnet9000", num_classes=10)


def test_timm_passthrough():
    m = models.build("timm/mobilenetv3_small_100", num_classes=10, in_chans=1, img_size=28)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert models.model_info("timm/mobilenetv3_small_100").family == "timm"
    with pytest.raises(ModelError, match="timm has no model 'resnet9000'"):
        models.build("timm/resnet9000", num_classes=10)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 10, "in_chans": 2}, "in_chans"),
    ({"num_classes": 10, "img_size": 8}, "img_size"),
    ({"num_classes": 10, "pretrained": True}, "cnn has no ImageNet weights"),
])
def test_bad_requests_are_refused(kwargs, match):
    with pytest.raises(ModelError, match=match):
        models.build("cnn", **kwargs)


def test_missing_weights_file_is_refused():
    with pytest.raises(ModelError, match="weights file /nonexistent.pth does not exist"):
        models.build("resnet18", num_classes=10, pretrained="/nonexistent.pth")


def test_cnn_fast_stem_is_space_to_depth_and_odd_sizes_keep_the_conv_pool_stem():
    even = models.build("cnn_fast", num_classes=10, in_chans=1, img_size=28)
    assert isinstance(even[0], torch.nn.PixelUnshuffle) and even[1].in_channels == 4
    assert even(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    odd = models.build("cnn_fast", num_classes=100, in_chans=3, img_size=33)
    assert isinstance(odd[0], torch.nn.Conv2d) and odd[0].in_channels == 3
    assert odd(torch.randn(2, 3, 33, 33)).shape == (2, 100)
