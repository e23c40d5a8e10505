"""Every recipe loads and validates; bad recipes fail before anything starts, naming the file and the key."""

import pytest

from tests.conftest import ROOT
from tunelab import search_spaces
from tunelab.search_spaces import SpecError

RECIPES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def test_the_issue_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"mnist_smoke", "mnist_architectures", "cifar100_architectures", "cifar100_augmentations",
            "cifar100_transfer", "cifar100_pbt"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_validates(path):
    spec = search_spaces.load(path)
    assert spec.space and spec.budget.epochs >= 1


def test_cifar_architectures_cover_the_families():
    spec = search_spaces.load(ROOT / "search_spaces" / "cifar100_architectures.yaml")
    models = set(spec.space["model"]["grid"])
    assert {"cnn", "resnet20", "resnet56", "resnet18", "efficientnet_b0", "vit_tiny"} <= models
    assert any(m.startswith("wrn") for m in models)
    assert spec.overrides["vit_tiny"]["lr"] < spec.space["lr"]["loguniform"][0]  # per-model override


GOOD = """
name: t
dataset: mnist
budget: {epochs: 2, samples: 2}
space:
  lr: {loguniform: [0.001, 0.1]}
"""


@pytest.mark.parametrize("text,needle", [
    (GOOD + "colour: blue\n", "colour: unknown key"),
    (GOOD.replace("budget: {epochs: 2", "budget: {epochs: 0"), "budget.epochs"),
    (GOOD.replace("loguniform: [0.001, 0.1]", "loguniform: [0, 0.1]"), "space.lr: loguniform needs 0 < low"),
    (GOOD.replace("loguniform: [0.001, 0.1]", "uniform: [0.5, 0.1]"), "space.lr: uniform needs low < high"),
    (GOOD.replace("lr: {loguniform: [0.001, 0.1]}", "lr: {normal: [0, 1]}"), "unknown sampler 'normal'"),
    (GOOD + "  model: {choice: [cnn, resnet9000]}\n", "space.model: 'resnet9000': unknown model"),
    (GOOD + "  augment: {choice: [none, sharpen]}\n", "space.augment: 'sharpen': unknown augmentation"),
    (GOOD + "  augment: {choice: [crop_flip]}\n", "flipped digits"),
    (GOOD + "  colour: {choice: [1, 2]}\n", "space.colour: not a training setting"),
    (GOOD + "fixed: {epochs: 3}\n", "fixed.epochs: not a training setting"),
    (GOOD + "overrides: {vit_tiny: {lr: 0.1}}\n", "overrides.vit_tiny: the sweep never tries"),
    (GOOD + "scheduler: {type: bohb}\n", "scheduler.type"),
    (GOOD + "search: {algorithm: bayes}\n", "search.algorithm"),
    ("name: t\ndataset: mnist\nspace: {}\n", "the search space is empty"),
    ("name: [unclosed\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_bad_recipes_name_file_and_key(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as e:
        search_spaces.load(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and needle in msg, msg
    assert "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        search_spaces.load(tmp_path / "nope.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['touch " + str(tmp_path / "pwned") + "']\n")
    with pytest.raises(SpecError):
        search_spaces.load(p)
    assert not (tmp_path / "pwned").exists()
