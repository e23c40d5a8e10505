"""Loaders on files in the exact on-disk formats; import verifies MD5s; splits and shards are seeded."""

import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch

from tests import fakedata
from tunelab.jobs import data, dataset_files, datasets
from tunelab.jobs.errors import JobError


def test_mnist_idx_files_load_through_torchvision(tmp_path):
    written = fakedata.write_mnist(tmp_path, n_train=120, n_test=30)
    raw = data.load("mnist", tmp_path)
    assert raw.train_x.shape == (120, 1, 28, 28) and raw.train_x.dtype == np.uint8
    assert raw.test_x.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(raw.train_x[:, 0], written["train"][0])
    np.testing.assert_array_equal(raw.test_y, written["t10k"][1])
    assert raw.train_y.dtype == np.int64
    assert raw.class_names == [str(d) for d in range(10)]  # the names `predict` prints


def test_cifar100_pickles_keep_fine_and_coarse_labels(tmp_path):
    written = fakedata.write_cifar100(tmp_path, n_train=300, n_test=50)
    raw = data.load("cifar100", tmp_path)
    assert raw.train_x.shape == (300, 3, 32, 32) and raw.train_x.dtype == np.uint8
    np.testing.assert_array_equal(raw.train_x.reshape(300, -1), written["train"]["data"])
    np.testing.assert_array_equal(raw.train_y, written["train"]["fine_labels"])
    np.testing.assert_array_equal(raw.train_y_coarse, written["train"]["coarse_labels"])
    np.testing.assert_array_equal(raw.test_y_coarse, written["test"]["coarse_labels"])
    assert raw.class_names == written["meta"]["fine_label_names"]
    assert raw.coarse_names == written["meta"]["coarse_label_names"]
    f2c = raw.fine_to_coarse
    seen = np.unique(raw.train_y)
    np.testing.assert_array_equal(f2c[seen], fakedata.fine_to_coarse()[seen])


def test_prepare_coarse_trains_on_20_superclasses(tmp_path):
    fakedata.write_cifar100(tmp_path, n_train=400, n_test=60)
    raw = data.load("cifar100", tmp_path)
    fine = data.prepare(raw, "fine", 0.1, seed=0)
    coarse = data.prepare(raw, "coarse", 0.1, seed=0)
    assert fine.num_classes == 100 and fine.fine_to_coarse is not None
    assert coarse.num_classes == 20 and coarse.fine_to_coarse is None
    # same split, labels mapped fine -> coarse
    np.testing.assert_array_equal(fine.fine_to_coarse[fine.train_y], coarse.train_y)
    assert len(fine.val_y) == 40 and len(fine.train_y) == 360


def test_cifar_loader_refuses_foreign_pickles(tmp_path):
    fakedata.write_cifar100(tmp_path, n_train=10, n_test=10)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(tmp_path / "cifar-100-python" / "train", "wb") as f:
        pickle.dump({"data": Evil()}, f)
    with pytest.raises(JobError, match="corrupt or truncated"):
        data.load("cifar100", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_cifar_file_is_one_clear_error(tmp_path):
    fakedata.write_cifar100(tmp_path, n_train=50, n_test=10)
    p = tmp_path / "cifar-100-python" / "test"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(JobError, match="import them again"):
        data.load("cifar100", tmp_path)


def test_missing_data_names_the_fix(tmp_path):
    with pytest.raises(JobError, match="tunelab data import DIR"):
        datasets.require("mnist", tmp_path)
    with pytest.raises(JobError, match="unknown dataset 'svhn'"):
        datasets.require("svhn", tmp_path)


def test_import_verifies_real_mnist(tmp_path, mnist_source):
    assert dataset_files.import_dir(mnist_source, tmp_path / "root") == ["mnist"]
    assert datasets.is_available("mnist", tmp_path / "root")
    raw = data.load("mnist", tmp_path / "root")
    assert raw.train_x.shape == (60_000, 1, 28, 28) and raw.test_x.shape == (10_000, 1, 28, 28)
    assert np.bincount(raw.test_y).tolist()[:3] == [980, 1135, 1032]  # the official test-set class counts


def test_import_refuses_corrupt_mnist_and_writes_nothing(tmp_path, mnist_source):
    src = tmp_path / "src"
    shutil.copytree(mnist_source, src)
    victim = next(src.rglob("t10k-labels*"))
    b = bytearray(victim.read_bytes())
    b[-1] ^= 0xFF
    victim.write_bytes(bytes(b))
    root = tmp_path / "root"
    with pytest.raises(JobError, match="not the official"):
        dataset_files.import_dir(src, root)
    assert not (root / "MNIST").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".import-")]


def test_import_refuses_unofficial_gz_archives(tmp_path):
    fakedata.write_mnist(tmp_path / "src", gz=True)
    with pytest.raises(JobError, match="MD5"):
        dataset_files.import_dir(tmp_path / "src", tmp_path / "root")
    assert not (tmp_path / "root" / "MNIST").exists()


def test_import_refuses_unofficial_cifar_archive(tmp_path):
    fakedata.write_cifar100(tmp_path / "gen", n_train=10, n_test=10)
    (tmp_path / "src").mkdir()
    with tarfile.open(tmp_path / "src" / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "gen" / "cifar-100-python", arcname="cifar-100-python")
    with pytest.raises(JobError, match="official"):
        dataset_files.import_dir(tmp_path / "src", tmp_path / "root")
    assert not (tmp_path / "root" / "cifar-100-python").exists()


def test_import_of_an_empty_folder_says_what_it_expected(tmp_path):
    with pytest.raises(JobError, match="no dataset files found"):
        dataset_files.import_dir(tmp_path, tmp_path / "root")
    with pytest.raises(JobError, match="not a folder"):
        dataset_files.import_dir(tmp_path / "nope", tmp_path / "root")


def test_validation_split_is_seeded_and_disjoint():
    tr, va = data.split_indices(1000, 0.1, seed=3)
    tr2, va2 = data.split_indices(1000, 0.1, seed=3)
    tr3, va3 = data.split_indices(1000, 0.1, seed=4)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, va3)
    assert len(va) == 100 and len(tr) == 900
    assert not set(tr) & set(va)
    trs, vas = data.split_indices(1000, 0.1, seed=3, subset=200)
    assert len(trs) + len(vas) == 200 and len(vas) == 20


def test_epoch_shards_are_disjoint_cover_and_reshuffle():
    n, world = 103, 4
    shards = [data.epoch_indices(n, epoch=0, seed=1, rank=r, world_size=world) for r in range(world)]
    allidx = torch.cat(shards)
    assert len(allidx) == (n // world) * world
    assert len(set(allidx.tolist())) == len(allidx)  # disjoint
    assert all(len(s) == n // world for s in shards)  # equal: DDP steps stay in lockstep
    again = data.epoch_indices(n, epoch=0, seed=1, rank=2, world_size=world)
    assert torch.equal(again, shards[2])
    nxt = data.epoch_indices(n, epoch=1, seed=1, rank=2, world_size=world)
    assert not torch.equal(nxt, shards[2])


def test_official_md5_tables_match_torchvision():
    """The registry's file names and MD5s for every built-in are torchvision's (its classes verify downloads)."""
    import torchvision.datasets as tvd

    mnist, c10, c100 = (datasets.BUILTINS[n] for n in ("mnist", "cifar10", "cifar100"))
    assert {url.removesuffix(".gz"): md5 for url, md5 in tvd.MNIST.resources} == {k: v[0] for k, v in mnist.files.items()}
    for spec, cls in ((c10, tvd.CIFAR10), (c100, tvd.CIFAR100)):
        assert spec.torchvision == cls.__name__
        assert spec.archive == cls.filename and spec.archive_md5 == cls.tgz_md5 and spec.folder == cls.base_folder
        tv = dict(cls.train_list + cls.test_list)
        tv[cls.meta["filename"]] = cls.meta["md5"]
        assert tv == {k: v[0] for k, v in spec.files.items()}
        assert cls.meta["key"] == spec.name_keys["fine"][1]


def test_info_counts_without_loading(tmp_path):
    fakedata.write_mnist(tmp_path, n_train=120, n_test=30)
    fakedata.write_cifar100(tmp_path, n_train=50, n_test=20)
    recs = {r["name"]: r for r in dataset_files.info(tmp_path)}
    assert (recs["mnist"]["train"], recs["mnist"]["test"]) == (120, 30)
    assert (recs["cifar100"]["train"], recs["cifar100"]["test"]) == (50, 20)
    assert recs["cifar10"]["present"] is False and recs["cifar10"]["image"] == "3x32x32"


def test_cifar10_pickles_load_all_five_training_batches(tmp_path):
    written = fakedata.write_cifar10(tmp_path, n_train=230, n_test=40)
    raw = data.load("cifar10", tmp_path)
    assert raw.train_x.shape == (230, 3, 32, 32) and raw.test_x.shape == (40, 3, 32, 32)
    np.testing.assert_array_equal(raw.train_x.reshape(230, -1), np.concatenate([b["data"] for b in written["train"]]))
    np.testing.assert_array_equal(raw.train_y, np.concatenate([b["labels"] for b in written["train"]]))
    np.testing.assert_array_equal(raw.test_y, written["test"]["labels"])
    assert raw.class_names == written["meta"]["label_names"] and raw.train_y_coarse is None
    prepared = data.prepare(raw, "fine", 0.1, seed=0)
    assert prepared.num_classes == 10 and prepared.fine_to_coarse is None and prepared.spec.name == "cifar10"
    with pytest.raises(JobError, match="no 'coarse' labels"):
        data.prepare(raw, "coarse", 0.1, seed=0)
    recs = {r["name"]: r for r in dataset_files.info(tmp_path)}
    assert (recs["cifar10"]["present"], recs["cifar10"]["train"], recs["cifar10"]["test"]) == (True, 230, 40)


def test_cifar10_missing_batch_is_not_present_and_names_the_fix(tmp_path):
    fakedata.write_cifar10(tmp_path, n_train=50, n_test=10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert not datasets.is_available("cifar10", tmp_path)
    with pytest.raises(JobError, match="tunelab data download cifar10"):
        data.load("cifar10", tmp_path)


def test_import_refuses_unofficial_cifar10_archive_and_folder(tmp_path):
    fakedata.write_cifar10(tmp_path / "gen", n_train=20, n_test=10)
    with pytest.raises(JobError, match="official CIFAR-10 MD5"):
        dataset_files.import_dir(tmp_path / "gen", tmp_path / "root")
    (tmp_path / "src").mkdir()
    with tarfile.open(tmp_path / "src" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "gen" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(JobError, match="not the official"):
        dataset_files.import_dir(tmp_path / "src", tmp_path / "root")
    assert not (tmp_path / "root" / "cifar-10-batches-py").exists()


def test_registry_specs_are_consistent():
    """Every built-in: its label sets have class counts, default labels first, mean/std per channel, a valid auto
    policy, and a name that can be a leaderboard key; the names list starts with the built-ins."""
    import re

    from tunelab.jobs.policies import canonical

    for name, s in datasets.BUILTINS.items():
        assert s.name == name and re.match(datasets.NAME_PATTERN, name)
        assert s.labels[0] == "fine" and len(s.mean) == len(s.std) == s.in_chans
        assert canonical("auto", name) != "none"
        assert all(n in s.files for m, _ in s.name_keys.values() for n in [m])
    assert datasets.names()[:3] == ["mnist", "cifar10", "cifar100"]
    with pytest.raises(JobError, match="built-in"):
        datasets.check_name("cifar10")
    for bad in ("My Set", "a:b", "x/y", "", "9lives", "a" * 40):
        with pytest.raises(JobError, match="lowercase"):
            datasets.check_name(bad)
