"""Malformed input across CLI flags, sweep recipes, data folders and URLs: each gets one line naming the problem
(and the fix), exit code 2, no traceback — and nothing half-written in the store or on disk."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import tarfile

import pytest

from tests import fakedata
from tests.conftest import ROOT, find_weights, in_process, run_cli, weights_path

WEIGHTS = str(weights_path())  # a path at collection time; the case using it checks with find_weights()
SMOKE = str(ROOT / "search_spaces" / "mnist_smoke.yaml")
GOOD_RECIPE = "name: t\ndataset: mnist\nbudget: {epochs: 1, samples: 1}\nspace:\n  lr: {loguniform: [0.001, 0.1]}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_source, redis_server):
    """A user with real MNIST imported, a shared Redis, and a folder of inputs: recipes, data folders."""
    from tunelab.jobs.dataset_files import import_dir

    root = tmp_path_factory.mktemp("bad")
    data = root / "data"
    assert import_dir(mnist_source, data) == ["mnist"]
    files = root / "files"
    (files / "empty").mkdir(parents=True)
    recipes = {"not_yaml": "name: [unclosed\n", "unknown_key": GOOD_RECIPE + "colour: blue\n",
               "bad_sampler": GOOD_RECIPE.replace("loguniform", "normal"), "empty_space": "name: t\ndataset: mnist\nspace: {}\n",
               "unknown_model": GOOD_RECIPE + "  model: {choice: [cnn, resnet9000]}\n",
               "python_tag": "name: !!python/object/apply:os.system ['echo pwned']\n"}
    for name, text in recipes.items():
        (files / f"{name}.yaml").write_text(text)
    # an MNIST folder whose training images are truncated: the MD5 check must catch it before anything is copied
    bad_mnist = files / "bad_mnist" / "MNIST" / "raw"
    bad_mnist.mkdir(parents=True)
    for src in (data / "MNIST" / "raw").iterdir():
        shutil.copy(src, bad_mnist / src.name)
    for train in bad_mnist.glob("train-images*"):  # the archive and its extracted file, where both are there
        train.write_bytes(train.read_bytes()[: train.stat().st_size // 2])
    # archives cut short, as an interrupted download leaves them: MNIST's .gz, CIFAR-100's tar.gz
    (files / "cut_gz").mkdir()
    blob = gzip.compress(next((data / "MNIST" / "raw").glob("train-images*")).read_bytes()[:1_000_000], 1)
    (files / "cut_gz" / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    (files / "cut_tar").mkdir()
    with tarfile.open(files / "cut_tar" / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(next((data / "MNIST" / "raw").glob("t10k-labels*")), arcname="cifar-100-python/meta")
    archive = files / "cut_tar" / "cifar-100-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    (files / "cifar_junk" / "cifar-100-python").mkdir(parents=True)
    for part in ("train", "test", "meta"):
        (files / "cifar_junk" / "cifar-100-python" / part).write_bytes(gzip.compress(b"not a pickle"))
    _image_folders(files / "img", data, root)
    env = {"TUNELAB_DATA_DIR": str(data), "TUNELAB_REDIS_URL": redis_server.url, "RAY_ADDRESS": "", "TUNELAB_STORAGE": ""}
    return {"env": env, "files": files, "data": data}


def _image_folders(img, data, root) -> None:
    """Image folders, each wrong in one way (and one right one, imported as 'taken')."""
    from PIL import Image

    from tunelab.jobs.folders import import_folder

    two = {"a": 3, "b": 3}
    fakedata.write_image_folder(img / "good", two)
    fakedata.write_image_folder(img / "one_class", {"only": 4})
    fakedata.write_image_folder(img / "empty_class", {"a": 3})
    (img / "empty_class" / "b").mkdir()
    (img / "empty_class" / "b" / "notes.txt").write_text("no images here")
    for name in ("not_image", "truncated", "tiny", "bomb", "link_out", "stray"):
        fakedata.write_image_folder(img / name, two)
    (img / "not_image" / "b" / "fake.png").write_text("this is text, not a PNG")
    good = (img / "good" / "a" / "img_0.png").read_bytes()
    (img / "truncated" / "b" / "cut.png").write_bytes(good[: len(good) // 2])
    Image.new("L", (1, 1)).save(img / "tiny" / "b" / "dot.png")
    (img / "bomb" / "b" / "huge.png").write_bytes(_png_header(30_000, 30_000))
    outside = root / "outside.png"
    outside.write_bytes(good)
    (img / "link_out" / "b" / "elsewhere.png").symlink_to(outside)
    (img / "stray" / "loose.png").write_bytes(good)
    fakedata.write_image_folder(img / "test_differs" / "train", two)
    fakedata.write_image_folder(img / "test_differs" / "test", {"a": 1, "c": 1})
    import_folder(img / "good", "taken", data, size=20)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's signature), with no real data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _busy_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


BUSY = _busy_port()

CASES = [
    # --- train flags
    (["train", "--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["train", "--model", "timm/resnet9000"], "timm has no model 'resnet9000'"),
    (["train", "--model", "resnet18", "--pretrained", WEIGHTS], "do not fit resnet18"),
    (["train", "--model", "tf_efficientnet_lite0", "--pretrained", "/no/such/weights.pth"], "does not exist"),
    (["train", "--model", "cnn", "--pretrained", "true"], "cnn has no ImageNet weights"),
    (["train", "--freeze-epochs", "2", "--epochs", "2"], "freeze_epochs 2 leaves no epoch"),
    (["train", "--augment", "sharpen"], "unknown augmentation 'sharpen'"),
    (["train", "--augment", "crop:99"], "magnitude of 'crop' must be between 0 and 16"),
    (["train", "--augment", "crop_flip"], "flipped digits are other digits"),
    (["train", "--augment", "mixup", "--batch-size", "63"], "must be even"),
    (["train", "--dataset", "svhn"], "unknown dataset 'svhn'; choose one of: mnist, cifar10, cifar100"),
    (["train", "--epochs", "-1"], "epochs: Input should be greater than or equal to 1"),
    (["train", "--epochs", "two"], "--epochs"),
    (["train", "--labels", "coarse"], "mnist has no coarse labels (it has: fine)"),
    (["train", "--label", "coarse"], "mnist has no coarse labels (it has: fine); drop --label coarse"),
    (["leaderboard", "--dataset", "mnist", "--labels", "coarse"], "MNIST has no coarse labels"),
    (["train", "--batch-size", "0"], "batch_size"),
    (["train", "--lr", "-0.1"], "lr"),
    (["train", "--dataset", "cifar100"], "CIFAR-100 is not in the data root"),
    (["train", "--subset", "10"], "subset"),
    # --- other commands
    (["leaderboard", "--dataset", "mnist", "--label", "coarse"], "MNIST has no coarse labels; drop --label coarse"),
    (["leaderboard", "--dataset", "svhn"], "unknown dataset 'svhn'; choose one of: mnist, cifar10, cifar100"),
    (["leaderboard"], "Missing option '--dataset'"),
    (["leaderboard", "--dataset", "mnist", "--limit", "0"], "--limit"),
    (["data", "download", "svhn"], "unknown dataset 'svhn'"),
    (["models", "list", "--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["nonsense"], "No such command"),
    (["dashboard", "--port", "70000"], "--port"),
    (["dashboard", "--port", str(BUSY.getsockname()[1])], "cannot listen on 127.0.0.1"),
    (["submit", "--", "data", "info"], "submit runs `train` or `sweep`"),
    # --- sweep recipes and flags
    (["sweep", "{files}/not_yaml.yaml"], "not valid YAML"),
    (["sweep", "{files}/unknown_key.yaml"], "colour: unknown key"),
    (["sweep", "{files}/bad_sampler.yaml"], "unknown sampler 'normal'"),
    (["sweep", "{files}/empty_space.yaml"], "the search space is empty"),
    (["sweep", "{files}/unknown_model.yaml"], "unknown model"),
    (["sweep", "{files}/python_tag.yaml"], "python_tag.yaml"),
    (["sweep", "{files}/missing.yaml"], "no such file"),
    (["sweep", SMOKE, "--name", "bad name!"], "--name:"),
    (["sweep", SMOKE, "--samples", "0"], "--samples"),
    (["sweep", "resume", "never-ran"], "no sweep named 'never-ran'"),
    # --- data folders
    (["data", "import", "/nonexistent/folder"], "is not a folder"),
    (["data", "import", "{files}/empty"], "no dataset files found"),
    (["data", "import", "{files}/bad_mnist"], "MD5"),
    (["data", "import", "{files}/cifar_junk"], "CIFAR-100"),
    (["data", "import", "{files}/cut_gz"], "train-images-idx3-ubyte.gz has MD5"),
    (["data", "import", "{files}/cut_tar"], "cifar-100-python.tar.gz has MD5"),
    # --- your own image folders (import-folder): each refused whole, nothing under the data root
    (["data", "import-folder", "/nonexistent/folder", "--name", "x"], "no such folder"),
    (["data", "import-folder", "{files}/not_yaml.yaml", "--name", "x"], "is a file, not a folder"),
    (["data", "import-folder", "{files}/empty", "--name", "x"], "holds no class folders"),
    (["data", "import-folder", "{files}/img/one_class", "--name", "x"], "a classifier needs at least two classes"),
    (["data", "import-folder", "{files}/img/empty_class", "--name", "x"], "empty_class/b has no images"),
    (["data", "import-folder", "{files}/img/not_image", "--name", "x"], "b/fake.png is not a readable image"),
    (["data", "import-folder", "{files}/img/truncated", "--name", "x"], "b/cut.png cannot be decoded"),
    (["data", "import-folder", "{files}/img/tiny", "--name", "x"], "b/dot.png is 1x1 px, too small"),
    (["data", "import-folder", "{files}/img/bomb", "--name", "x"], "decompression-bomb limit"),
    (["data", "import-folder", "{files}/img/link_out", "--name", "x"], "outside"),
    (["data", "import-folder", "{files}/img/stray", "--name", "x"], "is not inside a class folder"),
    (["data", "import-folder", "{files}/img/test_differs", "--name", "x"], "other class folders than"),
    (["data", "import-folder", "{files}/img/good", "--name", "cifar10"], "'cifar10' is a built-in dataset"),
    (["data", "import-folder", "{files}/img/good", "--name", "My Set"], "must be 1-32 lowercase letters"),
    (["data", "import-folder", "{files}/img/good", "--name", "taken"], "dataset 'taken' exists"),
    (["data", "import-folder", "{files}/img/good", "--name", "x", "--size", "8"], "--size 8: choose a side between"),
    (["data", "import-folder", "{files}/img/good", "--name", "x", "--channels", "2"], "--channels 2: choose 1"),
    (["data", "import-folder", "{files}/img/good", "--name", "x", "--test-fraction", "0.95"], "--test-fraction 0.95"),
    (["data", "import-folder", "{files}/img/good", "--name", "x", "--size", "512", "--max-memory", "0.0001"],
     "beyond the 0.0 GiB this machine holds"),
    (["data", "remove", "mnist"], "'mnist' is a built-in dataset"),
    (["data", "remove", "never"], "no imported dataset 'never'"),
    (["train", "--dataset", "taken", "--augment", "cutout:20"], "as much as the images' whole side (20 px)"),
    # --- URLs and addresses
    (["runs", "--env", "TUNELAB_REDIS_URL=http://example.com/"], "invalid Redis URL"),
    (["runs", "--env", "TUNELAB_REDIS_URL=redis://:hunter2@127.0.0.1:1/0"], "cannot reach Redis"),
    (["train", "--address", "not an address"], "is not host:port"),
    (["train", "--address", "127.0.0.1:1"], "cannot reach the Ray cluster at 127.0.0.1:1"),
    (["train", "--storage", "ftp://host/path"], "cannot store checkpoints at a ftp:// URI"),
    (["train", "--storage", "s3://"], "names no bucket or path"),
    (["jobs", "list", "--address", "ftp://head:8265"], "is not http://HOST:PORT"),
]


def _ids(case):
    return " ".join(case[0]).replace(WEIGHTS, "W").replace(str(ROOT), ".")[:80]


def _snapshot(world, store) -> tuple:
    files = sorted(str(p.relative_to(world["data"])) for p in world["data"].rglob("*"))
    return files, sorted(store.r.scan_iter("tl:*"))


@pytest.mark.parametrize("args,needle", CASES, ids=[_ids(c) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, store, args, needle, monkeypatch, capsys):
    if WEIGHTS in args:
        find_weights()  # missing weights fail here naming the fix, not as a wrong error message
    env = dict(world["env"])
    if args[1:2] == ["--env"]:  # a case about an environment variable
        key, value = args[2].split("=", 1)
        env[key] = value
        args = [args[0], *args[3:]]
    args = [a.replace("{files}", str(world["files"])) for a in args]
    before = _snapshot(world, store)
    proc = in_process(monkeypatch, capsys, env, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in lines[0] and "Traceback" not in proc.stderr + proc.stdout, lines[0]
    assert "hunter2" not in proc.stderr  # passwords never printed
    assert _snapshot(world, store) == before  # nothing half-written: no run, no trial, no file


def test_the_table_is_large_enough():
    kinds = {"flags": 0, "recipes": 0, "data": 0, "urls": 0}
    for args, _ in CASES:
        joined = " ".join(args)
        if args[0] == "sweep" and "{files}" in joined:
            kinds["recipes"] += 1
        elif args[:2] in (["data", "import"], ["data", "import-folder"]):
            kinds["data"] += 1
        elif "--env" in args or "--address" in args or "--storage" in args:
            kinds["urls"] += 1
        else:
            kinds["flags"] += 1
    assert len(CASES) >= 30 and all(n >= 3 for n in kinds.values()), kinds


def test_bad_input_in_a_fresh_process_too(world):
    # the console-script path end to end, for two representative mistakes
    for args, needle in [(["train", "--model", "resnet9000"], "unknown model 'resnet9000'"),
                         (["train", "--epochs", "-1"], "greater than or equal to 1")]:
        proc = run_cli(*args, env=world["env"])
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert json.loads(run_cli("runs", "--json", env=world["env"]).stdout) == []


CUT = '{"trial_data": [["{\\"trial_id'  # a saved state cut short, as a crash while copying it leaves it


@pytest.mark.parametrize("states,needle", [
    ({}, "the sweep stopped before Tune first saved its state"),
    ({"2026-01-02": CUT}, "experiment_state-2026-01-02_00-00-00.json is damaged (JSONDecodeError); start the sweep "
                          "again under a new name"),
    ({"2026-01-02": '{"trial_data": []}', "2026-01-03": CUT},
     "experiment_state-2026-01-03_00-00-00.json is damaged (JSONDecodeError); delete it to resume from the state "
     "before it (experiment_state-2026-01-02_00-00-00.json)"),
], ids=["no state", "cut short", "newest cut short"])
def test_a_damaged_sweep_state_is_one_line_on_resume(world, store, tmp_path, monkeypatch, capsys, states, needle):
    """Tune, finding its saved state unreadable, would start the sweep over as new; resume refuses instead."""
    from tunelab import search_spaces

    spec = search_spaces.load(SMOKE)
    exp = tmp_path / "exp" / spec.name
    exp.mkdir(parents=True)
    (exp / "tuner.pkl").write_bytes(b"\x80\x05N.")
    for day, text in states.items():
        (exp / f"experiment_state-{day}_00-00-00.json").write_text(text)
    store.start_run("r1", kind="sweep", name=spec.name, dataset="mnist", labels="fine", config=spec.model_dump(),
                    storage_path=str(tmp_path / "exp"))
    before = _snapshot(world, store), sorted(exp.iterdir()), store.get_run("r1")
    proc = in_process(monkeypatch, capsys, world["env"], "sweep", "resume", spec.name)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
    assert (_snapshot(world, store), sorted(exp.iterdir()), store.get_run("r1")) == before
