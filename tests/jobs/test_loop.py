"""The plain-PyTorch loop (no Ray): it learns on real MNIST, resumes exactly, derives coarse accuracy."""

import copy
import math

import pytest
import torch

from tests import fakedata
from tunelab import models
from tunelab.jobs import data
from tunelab.jobs.config import make_config
from tunelab.jobs.errors import JobError, TrainingDiverged
from tunelab.jobs.loop import run_training
from tunelab.jobs.step import StepOptions, inference_throughput


@pytest.fixture(scope="module")
def mnist_raw(mnist_root):
    return data.load("mnist", mnist_root)


def _train(cfg, prepared, **kw):
    reports = []
    # the state references live tensors: a reporter persists it before returning (here: a deep copy)
    model = run_training(cfg, prepared, report=lambda m, s: reports.append((m, copy.deepcopy(s))), **kw)
    return model, reports


def test_loop_learns_real_mnist(mnist_raw):
    cfg = make_config(dataset="mnist", model="cnn", epochs=2, subset=6000, batch_size=64, seed=0, precision="fp32")
    prepared = data.prepare(mnist_raw, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
    _, reports = _train(cfg, prepared)
    metrics = [m for m, _ in reports]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["val_acc"] > 0.93, metrics[-1]
    assert metrics[-1]["test_acc"] > 0.93, metrics[-1]  # the full 10,000-image test set
    assert "test_acc" not in metrics[0]
    # the trained model's inference speed, measured once, after the last epoch (and kept in its history)
    assert "infer_images_per_s" not in metrics[0] and metrics[-1]["infer_images_per_s"] > 0
    assert metrics[-1]["infer_batch_size"] == 600  # the 600 validation images: fewer than an evaluation batch
    assert reports[-1][1]["history"][-1]["infer_images_per_s"] == metrics[-1]["infer_images_per_s"]
    for m in metrics:
        assert m["images_per_s"] > 0 and m["epoch_time_s"] > 0 and math.isfinite(m["val_loss"])
        assert m["params"] == 431_242
    state = reports[-1][1]
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "config"}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, precision):
    # resnet20 has no dropout, so with the seeded per-epoch shuffle a resumed run must end bit-for-bit equal, in
    # either precision (bf16 is emulated, slowly, on CPUs without it: a smaller set there).
    n_train = 400 if precision == "fp32" else 160
    fakedata.write_cifar100(tmp_path, n_train=n_train, n_test=40)
    cfg = make_config(dataset="cifar100", model="resnet20", epochs=2, batch_size=40, optimizer="sgd", lr=0.05,
                      precision=precision)
    prepared = data.prepare(data.load("cifar100", tmp_path), "fine", cfg.val_fraction, cfg.seed)
    full, full_reports = _train(cfg, prepared)
    after_first = full_reports[0][1]
    resumed, resumed_reports = _train(cfg, prepared, resume_state=after_first)
    assert [m["epoch"] for m, _ in resumed_reports] == [2]
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    assert resumed_reports[0][0]["val_acc"] == pytest.approx(full_reports[1][0]["val_acc"])
    # each process says once what it trained on, precision as resolved
    assert full_reports[0][0]["runtime"]["precision"] == precision and "runtime" not in full_reports[1][0]
    assert resumed_reports[0][0]["runtime"]["precision"] == precision


def test_cifar_coarse_accuracy_is_derived_from_fine_predictions(tmp_path):
    fakedata.write_cifar100(tmp_path, n_train=1500, n_test=300)
    raw = data.load("cifar100", tmp_path)
    cfg = make_config(dataset="cifar100", model="cnn", epochs=2, batch_size=50)
    prepared = data.prepare(raw, "fine", cfg.val_fraction, cfg.seed)
    _, reports = _train(cfg, prepared)
    last = reports[-1][0]
    assert {"val_acc_coarse", "test_acc_coarse"} <= set(last)
    # a right fine class is always a right superclass, so derived coarse accuracy can never be lower
    assert last["val_acc_coarse"] >= last["val_acc"] and last["test_acc_coarse"] >= last["test_acc"]
    assert last["val_acc"] > 0.05  # the generated classes are learnable: well above 1 % chance


@pytest.mark.parametrize("precision,how", [
    ("fp32", "training loss became nan"),  # fp32: the loss overflows to inf, then NaN
    # bf16 autocast: here the loss explodes to thousands and stays finite (a CPU that emulates bf16 may round its
    # way to NaN instead); either way the run is stopped, not passed as trained at chance accuracy
    ("bf16", "training loss (reached .* over 10x the 2.30 of guessing|became nan)"),
])
def test_divergence_is_reported_not_hidden(mnist_raw, precision, how):
    cfg = make_config(dataset="mnist", model="cnn", epochs=1, subset=500, batch_size=50, optimizer="sgd", lr=10.0,
                      momentum=0.0, schedule="constant", warmup_epochs=0, precision=precision)
    prepared = data.prepare(mnist_raw, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
    with pytest.raises(TrainingDiverged, match=f"{how}.*lower --lr"):
        _train(cfg, prepared)


def test_what_counts_as_diverged():
    from tunelab.jobs.loop import check_diverged

    check_diverged(2.3, 2.4, 10, 1)  # an untrained net guesses: ln 10 = 2.30
    check_diverged(0.5, 22.0, 10, 1)  # a bad step, but under 10x guessing
    check_diverged(4.0, 40.0, 100, 1)  # 100 classes: guessing costs 4.61
    for loss, peak in [(float("nan"), 3.0), (2.0, float("inf")), (2.4, 24.0)]:
        with pytest.raises(TrainingDiverged, match="lower --lr"):
            check_diverged(loss, peak, 10, 3)


def test_too_few_images_for_one_batch(mnist_raw):
    cfg = make_config(dataset="mnist", epochs=1, subset=100, batch_size=512)
    prepared = data.prepare(mnist_raw, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
    with pytest.raises(JobError, match="fewer than one batch"):
        _train(cfg, prepared)


@pytest.mark.parametrize("values,match", [
    ({"epochs": -1}, "epochs"),
    ({"lr": 0}, "lr"),
    ({"labels": "coarse", "dataset": "mnist"}, "mnist has no coarse labels .it has: fine.; drop --label coarse"),
    ({"batch_size": 2, "workers": 4}, "smaller than workers"),
    ({"optimizer": "lion"}, "optimizer"),
])
def test_bad_config_is_one_readable_line(values, match):
    with pytest.raises(JobError, match=match) as e:
        make_config(**values)
    assert "\n" not in str(e.value)


def test_frozen_backbone_then_fine_tuned_at_a_lower_rate(tmp_path):
    fakedata.write_cifar100(tmp_path, n_train=400, n_test=100)
    cfg = make_config(dataset="cifar100", model="resnet20", epochs=2, batch_size=40, optimizer="sgd", lr=0.05,
                      freeze_epochs=1, backbone_lr_scale=0.1, schedule="constant", warmup_epochs=0)
    prepared = data.prepare(data.load("cifar100", tmp_path), "fine", cfg.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    init = models.build("resnet20", num_classes=100, in_chans=3, img_size=32).state_dict()
    _, reports = _train(cfg, prepared)
    after1, after2 = reports[0][1]["model"], reports[1][1]["model"]
    head = {"fc.weight", "fc.bias"}
    backbone = [k for k in init if k not in head and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(after1[k], init[k]) for k in backbone), "backbone moved while frozen"
    assert not torch.equal(after1["fc.weight"], init["fc.weight"]), "head did not train while frozen"
    assert any(not torch.equal(after2[k], after1[k]) for k in backbone), "backbone never fine-tuned"
    groups = reports[1][1]["optimizer"]["param_groups"]
    lrs = {g["is_head"]: g["lr"] for g in groups}
    assert lrs[False] == pytest.approx(0.1 * lrs[True])


@pytest.mark.parametrize("name", models.list_models())
def test_every_registered_model_trains_an_epoch_on_real_mnist(mnist_raw, name):
    # The acceptance run (`tunelab train --model NAME --epochs 1 --subset 512`) at smaller scale, without Ray.
    cfg = make_config(dataset="mnist", model=name, epochs=1, subset=100, batch_size=30, seed=0)
    prepared = data.prepare(mnist_raw, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
    _, reports = _train(cfg, prepared)
    m = reports[-1][0]
    assert m["epoch"] == 1 and math.isfinite(m["train_loss"]) and m["test_images"] == 100
    assert 0.0 <= m["test_acc"] <= 1.0


@pytest.mark.parametrize("policy", ["crop_flip+cutout", "mixup", "cutmix", "randaugment", "trivialaugment", "autoaugment"])
def test_loop_trains_with_each_policy(tmp_path, policy):
    fakedata.write_cifar100(tmp_path, n_train=300, n_test=60)
    cfg = make_config(dataset="cifar100", model="resnet20", epochs=1, batch_size=30, augment=policy, label_smoothing=0.1)
    prepared = data.prepare(data.load("cifar100", tmp_path), "fine", cfg.val_fraction, cfg.seed)
    _, reports = _train(cfg, prepared)
    m = reports[-1][0]
    assert math.isfinite(m["train_loss"]) and 0 <= m["test_acc"] <= 1
    assert reports[-1][1]["config"]["augment"] == cfg.augment


def test_mnist_default_recipe_and_speed_options_resolve():
    from tunelab.jobs.datasets import BUILTINS
    from tunelab.jobs.step import native_bf16

    cfg = make_config(dataset="mnist")  # no model named: the dataset's recipe fills every value not given
    assert cfg.model == BUILTINS["mnist"].recipe["model"] and cfg.epochs == BUILTINS["mnist"].recipe["epochs"]
    assert make_config(dataset="mnist", epochs=7).epochs == 7  # a given value wins over the recipe
    other = make_config(dataset="mnist", model="cnn")  # another model: the generic defaults, not the recipe's
    assert other.optimizer == "adamw" and other.epochs == 2
    cpu = torch.device("cpu")
    opts = cfg.step_options(cpu)  # auto: bf16 only where the CPU computes it natively; channels-last on GPUs only
    assert opts.amp == native_bf16(cpu) and not opts.channels_last and not opts.compile
    forced = make_config(dataset="mnist", precision="bf16", channels_last=True, compile=True).step_options(cpu)
    assert forced.amp and forced.channels_last and forced.compile
    with pytest.raises(JobError, match="precision"):
        make_config(dataset="mnist", precision="fp16")


def test_the_recipe_scales_its_batch_and_rate_to_a_subset():
    from tunelab.jobs.config import SUBSET_MIN_STEPS

    full = make_config(dataset="mnist")
    small = make_config(dataset="mnist", subset=3000)  # 2,700 training images: 7 steps an epoch at the full batch
    assert small.model == full.model and small.batch_size < full.batch_size
    assert 2700 // small.batch_size >= SUBSET_MIN_STEPS
    assert small.lr / small.batch_size == pytest.approx(full.lr / full.batch_size)  # the same rate per image
    assert make_config(dataset="mnist", subset=3000, batch_size=384).batch_size == 384  # a given value wins
    assert make_config(dataset="mnist", subset=3000, lr=0.2).lr == 0.2
    assert make_config(dataset="mnist", subset=60000).batch_size == full.batch_size  # enough steps already
    assert make_config(dataset="mnist", model="cnn", subset=3000).batch_size == 128  # other models: no recipe


def test_runtime_info_names_precision_and_device():
    from tunelab.jobs.step import cpu_kind, native_bf16, runtime_info

    cpu = torch.device("cpu")
    for precision in ("fp32", "bf16"):
        info = runtime_info(cpu, make_config(dataset="mnist", precision=precision).step_options(cpu), world_size=2)
        assert info["precision"] == precision and info["device"] == "cpu" and info["workers"] == 2
        assert info["threads"] == torch.get_num_threads() and info["torch"] == torch.__version__.split("+")[0]
    assert info["device_name"] and info["cpu_kind"] == cpu_kind() and info["bf16_native"] == native_bf16(cpu)
    auto = runtime_info(cpu, make_config(dataset="mnist").step_options(cpu))
    assert auto["precision"] == ("bf16" if native_bf16(cpu) else "fp32")  # auto, as this CPU resolves it
    assert cpu_kind() in ("amx_bf16", "avx512_bf16", "avx512", "avx2", "other")


def test_bf16_channels_last_and_compiled_training_learn_and_checkpoint_plain_weights(mnist_raw):
    prepared = data.prepare(mnist_raw, "fine", 0.1, 0, 600)
    for options in ({"precision": "bf16", "channels_last": True}, {"compile": True}):
        cfg = make_config(dataset="mnist", model="cnn_fast", epochs=2, batch_size=32, optimizer="sgd", lr=0.1,
                          subset=600, **options)
        model, reports = _train(cfg, prepared)
        metrics = [m for m, _ in reports]
        assert metrics[-1]["val_acc"] > 0.5, (options, metrics[-1])  # chance: 0.1
        assert metrics[-1]["infer_images_per_s"] > 0, options
        state = reports[-1][1]["model"]
        # the checkpoint holds the module's own weights, loadable without compile (no `_orig_mod.` prefix)
        assert not any(k.startswith("_orig_mod.") for k in state), list(state)[:3]
        fresh = models.build("cnn_fast", num_classes=10, in_chans=1, img_size=28)
        fresh.load_state_dict(state)
        if options.get("channels_last"):
            conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
            assert conv.weight.is_contiguous(memory_format=torch.channels_last)


class _Recording(torch.nn.Module):
    """A real (tiny) model that notes how each forward pass ran."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.calls: list[tuple] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"),
                           x.is_contiguous(memory_format=torch.channels_last), len(x)))
        return self.conv(x).mean((2, 3))


@pytest.mark.parametrize("opts", [StepOptions(), StepOptions(amp=True, channels_last=True)])
def test_inference_throughput_times_eval_passes_as_evaluation_runs_them(opts):
    model = _Recording().train()
    rate = inference_throughput(model, torch.randn(8, 3, 16, 16), opts, min_seconds=0.0)
    assert rate > 0 and model.training  # its mode is given back
    assert len(model.calls) == 2  # a warm-up pass, then one timed
    assert set(model.calls) == {(False, False, opts.amp, opts.channels_last, 8)}  # eval, no grad, as asked
    model.calls.clear()
    inference_throughput(model, torch.randn(8, 3, 16, 16), opts, min_seconds=0.05)
    timed = len(model.calls) - 1
    assert timed >= 1 and timed & (timed - 1) == 0, timed  # rounds of 1, 1, 2, 4, ... passes: a power of two
