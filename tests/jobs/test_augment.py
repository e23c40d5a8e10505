"""Augmentation: batched and per-sample random, seeded, label-safe, never applied to evaluation."""

import pytest
import torch

from tunelab.jobs.augment import Augmenter
from tunelab.jobs.datasets import get as spec
from tunelab.jobs.errors import JobError
from tunelab.jobs.policies import OPS, canonical, parse_policy

CIFAR_MEAN, CIFAR_STD = spec("cifar100").mean, spec("cifar100").std
CPU = torch.device("cpu")


def _batch(n=16, c=3, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 100, (n,), generator=g)
    return x, y


def _aug(policy, dataset="cifar100", **kw):
    mean, std = spec(dataset).mean, spec(dataset).std
    return Augmenter(policy, dataset, mean, std, 10 if dataset == "mnist" else 100, CPU, **kw)


def _denorm(a, x):
    return (x * a.std.view(1, -1, 1, 1) * 255 + a.mean.view(1, -1, 1, 1) * 255).round()


@pytest.mark.parametrize("policy", ["none", "crop", "flip", "crop_flip", "cutout", "crop_flip+cutout", "randaugment",
                                    "trivialaugment", "autoaugment", "mixup", "cutmix", "mixup+cutmix", "auto"])
def test_shapes_dtypes_and_ranges(policy):
    a = _aug(policy)
    x, y = _batch()
    xa, ya = a(x, y)
    assert xa.shape == x.shape and xa.dtype == torch.float32 and torch.isfinite(xa).all()
    # every value is a normalised 0..255 pixel (mixing stays inside the convex hull)
    lo = ((0 - a.mean * 255) / (a.std * 255)).min() - 1e-4
    hi = ((255 - a.mean * 255) / (a.std * 255)).max() + 1e-4
    assert xa.min() >= lo and xa.max() <= hi
    if OPS[policy.split("+")[0]].mixes:
        assert ya.shape == (16, 100) and ya.dtype == torch.float32
        assert torch.allclose(ya.sum(1), torch.ones(16), atol=1e-5)  # targets sum to one per sample
    else:
        assert torch.equal(ya, y)


@pytest.mark.parametrize("policy", ["crop_flip+cutout", "randaugment", "mixup+cutmix"])
def test_same_seed_same_batch_other_step_other_batch(policy):
    x, y = _batch()
    a1, a2 = _aug(policy, seed=3), _aug(policy, seed=3)
    b1, t1 = a1(x, y, epoch=1, step=5)
    b2, t2 = a2(x, y, epoch=1, step=5)
    assert torch.equal(b1, b2) and torch.equal(t1, t2)
    b3, _ = a1(x, y, epoch=1, step=6)
    assert not torch.equal(b1, b3)
    b4, _ = _aug(policy, seed=4)(x, y, epoch=1, step=5)
    assert not torch.equal(b1, b4)


def test_crops_and_flips_differ_per_sample():
    # One image repeated: any difference between rows comes from per-sample draws, not one draw per batch.
    img = torch.arange(32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 1, 32, 32).repeat(64, 3, 1, 1)
    a = _aug("crop_flip")
    out = _denorm(a, a(img, torch.zeros(64, dtype=torch.long))[0])
    distinct = {tuple(o[0, 10:20, 10:20].flatten().tolist()) for o in out}
    assert len(distinct) > 20
    # each output is the source shifted by at most 4 px (crop) and maybe mirrored (flip)
    src = img[0, 0].float()
    centre_ok = 0
    for o in out[:, 0]:
        for cand in (o, o.flip(-1)):
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    if torch.equal(cand[8:24, 8:24], src[8 + dy:24 + dy, 8 + dx:24 + dx]):
                        centre_ok += 1
                        break
                else:
                    continue
                break
            else:
                continue
            break
    assert centre_ok == 64
    flipped = a(img, torch.zeros(64, dtype=torch.long))[0]
    assert flipped.shape == img.shape


def test_cutout_erases_one_square_to_the_mean():
    x = torch.full((32, 3, 32, 32), 255, dtype=torch.uint8)
    a = _aug("cutout:8")
    out = a(x, torch.zeros(32, dtype=torch.long))[0]
    erased = (out.abs() < 0.01).all(1)  # the mean pixel (rounded to uint8) -> ~0 once normalised
    counts = erased.flatten(1).sum(1)
    assert (counts > 0).all() and (counts <= 64).all()
    assert len(set(counts.tolist())) > 1 or len({tuple(e.nonzero()[0].tolist()) for e in erased}) > 1


def test_mnist_is_never_flipped():
    with pytest.raises(JobError, match="flipped digits"):
        parse_policy("crop_flip", "mnist")
    with pytest.raises(JobError, match="flipped digits"):
        parse_policy("flip", "mnist")
    assert "flip" not in canonical("auto", "mnist")  # auto just leaves it out
    # and randaugment's ops on digits: the policy itself contains no flip in torchvision's RandAugment
    a = _aug("auto", dataset="mnist")
    x = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    x[:, :, :, :5] = 255  # a bar on the left stays on the left (crop shifts by <= 2 px)
    out = _denorm(a, a(x, torch.zeros(8, dtype=torch.long))[0])
    assert (out[:, 0, :, :3].mean() > out[:, 0, :, -10:].mean())


@pytest.mark.parametrize("policy,match", [
    ("sharpen", "unknown augmentation 'sharpen'"),
    ("crop:99", "between 0 and 16"),
    ("mixup:-1", "between"),
    ("cutout:x", "must be a number"),
    ("trivialaugment:3", "takes no magnitude"),
    ("randaugment+autoaugment", "several per-image"),
    ("crop+crop", "twice"),
    ("auto+cutout", "stands alone"),
])
def test_bad_policies_are_one_clear_line(policy, match):
    with pytest.raises(JobError, match=match) as e:
        parse_policy(policy, "cifar100")
    assert "\n" not in str(e.value)


def test_canonical_names_record_magnitudes():
    assert canonical("crop_flip+cutout", "cifar100") == "crop_flip:4+cutout"
    assert canonical("auto", "cifar100") == "crop_flip:4+cutout"
    assert canonical("mixup:0.4", "cifar100") == "mixup:0.4"
    assert canonical("none", "mnist") == "none"


def test_evaluation_batches_are_untouched():
    a = _aug("crop_flip+cutout+mixup")
    x, _ = _batch()
    ev = a.normalise(x)
    expected = (x.float() / 255 - torch.tensor(CIFAR_MEAN).view(1, -1, 1, 1)) / torch.tensor(CIFAR_STD).view(1, -1, 1, 1)
    assert torch.allclose(ev, expected, atol=1e-5)
    assert torch.allclose(a.normalise(x), ev)  # no randomness on the evaluation path
