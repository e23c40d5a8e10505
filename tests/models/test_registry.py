"""Every registered model builds, runs forward and backward, and has the published size."""

import pytest
import torch

import models
from models import ModelError


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("in_chans,img_size,classes", [(1, 28, 10), (3, 32, 100)])
def test_forward_backward(name, in_chans, img_size, classes):
    torch.manual_seed(0)
    model = models.build(name, num_classes=classes, in_chans=in_chans, img_size=img_size)
    x = torch.randn(4, in_chans, img_size, img_size)
    out = model(x)
    assert out.shape == (4, classes)
    assert torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_resnet20_matches_he_et_al():
    # He et al. 2016, Table 6: ResNet-20 on CIFAR-10 has 0.27 M parameters (option-A shortcuts). Exactly:
    # convs 432 + 6*2,304 + (4,608 + 5*9,216) + (18,432 + 5*36,864) = 267,696; BN 2*(16+6*16+6*32+6*64) = 1,376;
    # fc 64*10+10 = 650.
    m = models.build("resnet20", num_classes=10, in_chans=3, img_size=32)
    assert models.count_parameters(m) == 267_696 + 1_376 + 650 == 269_722


def test_cnn_parameter_count_follows_its_layers():
    # conv 1->32 3x3 (320) + conv 32->64 3x3 (18,496) + dense 64*5*5->256 (409,856) + dense 256->10 (2,570)
    m = models.build("cnn", num_classes=10, in_chans=1, img_size=28)
    assert models.count_parameters(m) == 320 + 18_496 + 409_856 + 2_570
    # at 32 px the flattened map is 6x6
    m32 = models.build("cnn", num_classes=100, in_chans=3, img_size=32)
    assert models.count_parameters(m32) == 896 + 18_496 + (64 * 36 * 256 + 256) + (256 * 100 + 100)


def test_unknown_model_names_the_choices():
    with pytest.raises(ModelError, match="unknown model 'resnet9000'.*cnn.*resnet20"):
        models.build("resnet9000", num_classes=10)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 10, "in_chans": 2}, "in_chans"),
    ({"num_classes": 10, "img_size": 8}, "img_size"),
])
def test_bad_shapes_are_refused(kwargs, match):
    with pytest.raises(ModelError, match=match):
        models.build("cnn", **kwargs)
