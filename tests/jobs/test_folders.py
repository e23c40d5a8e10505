"""Your own image folders as datasets: the layouts read, how images of every mode become arrays, the manifest, the
seeded stratified test split, atomic replace and remove, and a model and a policy adapting to the folder's shape."""

import json

import numpy as np
import pytest
from PIL import Image

from tests import fakedata
from tunelab.jobs import data, datasets
from tunelab.jobs.errors import JobError
from tunelab.jobs.folders import MANIFEST, arrays_path, decode, import_folder, remove, scan


@pytest.fixture(autouse=True)
def _root(tmp_path):
    """The registry reads imported datasets from this test's data root."""
    datasets.use_root(tmp_path / "data")
    yield tmp_path / "data"


def test_class_folders_import_with_a_seeded_stratified_test_split(tmp_path):
    src = tmp_path / "pets"
    fakedata.write_image_folder(src, {"cat": 20, "dog": 10, "emu": 5}, size=(24, 24))
    (src / "README.txt").write_text("not an image")
    (src / "cat" / "notes.md").write_text("neither")
    done = import_folder(src, "pets", tmp_path / "data")
    m = done.manifest
    assert m["classes"] == ["cat", "dog", "emu"] and (m["channels"], m["size"]) == (3, 24)
    assert m["counts"] == {"train": {"cat": 16, "dog": 8, "emu": 4}, "test": {"cat": 4, "dog": 2, "emu": 1}}
    assert m["split"] == {"kind": "stratified", "seed": 0, "test_fraction": 0.2}
    assert m["source"]["skipped"] == {".txt": 1, ".md": 1} and m["source"]["files"] == 35
    assert len(m["source"]["sha256"]) == 64
    raw = data.load("pets", tmp_path / "data")
    assert raw.train_x.shape == (28, 3, 24, 24) and raw.test_x.shape == (7, 3, 24, 24)
    assert raw.class_names == ["cat", "dog", "emu"] and np.bincount(raw.test_y).tolist() == [4, 2, 1]
    # the same import again: the same split, the same arrays
    again = import_folder(src, "pets2", tmp_path / "data")
    assert again.manifest["source"]["sha256"] == m["source"]["sha256"]
    np.testing.assert_array_equal(data.load("pets2", tmp_path / "data").test_x, raw.test_x)
    s = datasets.get("pets")
    assert (s.in_chans, s.img_size, s.num_classes, s.builtin) == (3, 24, {"fine": 3}, False)
    assert s.auto_augment == "crop_flip:3" and 0 < s.mean[0] < 1


def test_train_and_test_folders_are_the_split(tmp_path):
    src = tmp_path / "src"
    fakedata.write_image_folder(src / "train", {"a": 6, "b": 4}, mode="L")
    fakedata.write_image_folder(src / "test", {"a": 2, "b": 3}, mode="L", seed=1)
    m = import_folder(src, "ab", tmp_path / "data").manifest
    assert m["split"] == {"kind": "folders"} and m["channels"] == 1
    assert m["counts"] == {"train": {"a": 6, "b": 4}, "test": {"a": 2, "b": 3}}
    raw = data.load("ab", tmp_path / "data")
    got = raw.test_x[2, 0]  # test/b/img_0.png: class b's first file comes after class a's two
    want = np.asarray(Image.open(src / "test" / "b" / "img_0.png"))
    np.testing.assert_array_equal(got, want)
    with pytest.raises(JobError, match="--test-fraction applies only without one"):
        import_folder(src, "ab2", tmp_path / "data", test_fraction=0.3)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "1", "CMYK"])
def test_every_image_mode_becomes_grey_or_rgb_uint8(tmp_path, mode):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8] = (200, 100, 50)
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L"), np.uint16) * 257))
    elif mode == "P":
        img = img.quantize(4)
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    for channels in (1, 3):
        a = decode(path.read_bytes(), channels, 16)
        assert a.shape == (channels, 16, 16) and a.dtype == np.uint8 and a.flags.writeable
        if mode in ("L", "LA", "I;16", "RGB", "RGBA", "P"):
            grey = np.asarray(Image.fromarray(rgb).convert("L"))
            top = a[0, 0, 0] if channels == 1 else a[:, 0, 0]
            expect = grey[0, 0] if channels == 1 else (np.array([200, 100, 50]) if mode in ("RGB", "RGBA", "P")
                                                        else np.repeat(grey[0, 0], 3))
            np.testing.assert_allclose(top, expect, atol=2)
            assert a[..., 12, :].max() == 0  # the black half stays black


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((10, 10), 30000, np.uint16)).save(path)
    assert decode(path.read_bytes(), 1, 10)[0, 0, 0] == round(30000 / 257)  # 117, not 255


def test_non_square_images_are_resized_by_the_shorter_side_and_centre_cropped(tmp_path):
    img = np.zeros((20, 60), np.uint8)
    img[:, 20:40] = 255  # the middle third: what a centre crop keeps
    path = tmp_path / "wide.png"
    Image.fromarray(img).save(path)
    a = decode(path.read_bytes(), 1, 20)
    assert a.shape == (1, 20, 20) and a[0, :, 3:17].min() == 255


def test_size_and_channels_defaults_and_choices(tmp_path):
    flat, root = tmp_path / "flat", tmp_path / "data"
    fakedata.write_image_folder(flat, {"a": 3}, size=(30, 20))
    fakedata.write_image_folder(flat, {"b": 3}, size=(40, 40), mode="L")
    m = import_folder(flat, "flat", root).manifest
    assert (m["channels"], m["size"]) == (3, 64)  # one class is RGB; sizes differ: the default side
    m = import_folder(flat, "flat1", root, size=16, channels=1).manifest
    assert (m["channels"], m["size"]) == (1, 16)
    assert data.load("flat1", root).train_x.shape[1:] == (1, 16, 16)


def test_replace_swaps_the_dataset_and_a_second_import_is_refused(tmp_path):
    root = tmp_path / "data"
    fakedata.write_image_folder(tmp_path / "v1", {"a": 4, "b": 4})
    fakedata.write_image_folder(tmp_path / "v2", {"a": 6, "b": 6, "c": 6})
    import_folder(tmp_path / "v1", "set", root)
    old_arrays = arrays_path(root / "imported" / "set")
    with pytest.raises(JobError, match="exists .* --replace"):
        import_folder(tmp_path / "v2", "set", root)
    assert datasets.get("set", root).num_classes == {"fine": 2}
    import_folder(tmp_path / "v2", "set", root, replace=True)
    assert datasets.get("set", root).num_classes == {"fine": 3}
    assert not old_arrays.exists() and len(list((root / "imported" / "set").iterdir())) == 2
    assert [p.name for p in (root / "imported").iterdir()] == ["set"]  # no temporary folder left


def test_remove_deletes_an_imported_dataset_only(tmp_path):
    root = tmp_path / "data"
    fakedata.write_image_folder(tmp_path / "src", {"a": 3, "b": 3})
    import_folder(tmp_path / "src", "gone", root)
    assert "gone" in datasets.names(root)
    remove("gone", root)
    assert "gone" not in datasets.names(root) and not (root / "imported" / "gone").exists()
    with pytest.raises(JobError, match="no imported dataset 'gone'"):
        remove("gone", root)
    with pytest.raises(JobError, match="built-in"):
        remove("mnist", root)
    with pytest.raises(JobError, match="unknown dataset 'gone'"):
        datasets.get("gone", root)


def test_the_memory_estimate_refuses_before_decoding(tmp_path):
    fakedata.write_image_folder(tmp_path / "src", {"a": 5, "b": 5}, size=(16, 16))
    with pytest.raises(JobError, match=r"10 images at 3x512x512 take 0\.0 GiB as arrays, beyond the 0\.0 GiB"):
        import_folder(tmp_path / "src", "big", tmp_path / "data", size=512, max_memory=1_000_000)
    assert not (tmp_path / "data" / "imported" / "big").exists()


def test_parallel_decoding_gives_the_same_arrays(tmp_path):
    fakedata.write_image_folder(tmp_path / "src", {"a": 1100, "b": 1000}, size=(8, 8), mode="L")
    one = import_folder(tmp_path / "src", "one", tmp_path / "data", workers=1)
    two = import_folder(tmp_path / "src", "two", tmp_path / "data", workers=2)
    assert one.manifest["source"]["sha256"] == two.manifest["source"]["sha256"]
    a, b = data.load("one", tmp_path / "data"), data.load("two", tmp_path / "data")
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_y, b.test_y)


def test_scan_follows_links_inside_the_folder(tmp_path):
    src = tmp_path / "src"
    files = fakedata.write_image_folder(src, {"a": 2, "b": 2})
    (src / "a" / "alias.png").symlink_to(files["b"][0])
    layout = scan(src)
    assert len(layout.files["train"]["a"]) == 3


def test_a_model_and_policies_adapt_to_the_folder(tmp_path):
    """A 3-channel 40 px folder with 3 classes trains (the registry's shape reaches the model and the augmenter);
    a policy that cannot apply to 40 px images is refused in one line."""
    from tunelab.jobs.config import make_config
    from tunelab.jobs.loop import run_training

    fakedata.write_image_folder(tmp_path / "src", {"r": 30, "g": 30, "b": 30}, size=(40, 40))
    import_folder(tmp_path / "src", "shapes", tmp_path / "data")
    prepared = data.prepare(data.load("shapes", tmp_path / "data"), "fine", 0.1, seed=0)
    assert (prepared.in_chans, prepared.img_size, prepared.num_classes) == (3, 40, 3)
    epochs = []
    cfg = make_config(dataset="shapes", model="resnet20", epochs=1, batch_size=16, augment="auto", precision="fp32")
    assert cfg.augment == "crop_flip:5"
    run_training(cfg, prepared, report=lambda m, s: epochs.append(m))
    assert epochs[-1]["epoch"] == 1 and 0 <= epochs[-1]["test_acc"] <= 1
    with pytest.raises(JobError, match="cutout:40 erases a square of 40 px, as much as the images' whole side"):
        make_config(dataset="shapes", augment="cutout:40")
    with pytest.raises(JobError, match="no coarse labels"):
        make_config(dataset="shapes", labels="coarse")
    fakedata.write_image_folder(tmp_path / "txt", {"p": 3, "q": 3})
    import_folder(tmp_path / "txt", "letters", tmp_path / "data", flippable=False)
    assert make_config(dataset="letters", augment="auto").augment == "crop:1"  # 20 px: 1/14 of the side, no flip
    with pytest.raises(JobError, match="letters was imported with --no-flip: a mirrored image is of another class"):
        make_config(dataset="letters", augment="crop_flip")


def test_manifest_is_readable_json_with_unicode_class_names(tmp_path):
    src = tmp_path / "src"
    fakedata.write_image_folder(src, {"<img src=x onerror=alert(1)>": 2, "café au lait": 2, "日本": 2})
    done = import_folder(src, "names", tmp_path / "data")
    m = json.loads((tmp_path / "data" / "imported" / "names" / MANIFEST).read_text(encoding="utf-8"))
    assert m["classes"] == sorted(["<img src=x onerror=alert(1)>", "café au lait", "日本"]) == done.manifest["classes"]
    assert datasets.get("names").class_names["fine"] == tuple(m["classes"])
