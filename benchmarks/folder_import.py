"""`tunelab data import-folder` on real MNIST written out as PNG files: import speed, and whether training on the
imported dataset is as fast as on the built-in one.

    python benchmarks/folder_import.py --data ../shared/data     # writes the "folder-import" section
    python benchmarks/folder_import.py --quick                    # smoke run (4,000 + 1,000 images, 1 round), prints only

In one run, one process (with every core) unless said otherwise:

1. all 70,000 MNIST images written as `DIR/{train,test}/<digit>/<index>.png` with PIL, in parallel (timed);
2. `tunelab data import-folder DIR --name mnist_png --no-flip --json` in its own process, as a user runs it (decoding
   in one process per core), then the same import through the Python API with `workers=1`;
3. the built-in MNIST recipe, made explicit and pinned to fp32, trained in the bare loop (`jobs.loop.run_training`,
   no Ray) on `mnist` and on `mnist_png` in alternating order, after one untimed warm-up epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import scratch_root, write_section  # noqa: E402

NAME = "mnist_png"
GOAL = 1.05  # folder / built-in median epoch train time
RECIPE = {"model": "cnn_fast", "epochs": 2, "batch_size": 384, "optimizer": "sgd", "lr": 0.3, "momentum": 0.9,
          "weight_decay": 5e-4, "schedule": "onecycle", "warmup_epochs": 0.5, "precision": "fp32"}


def mnist_dir() -> Path:
    """../shared/data when it holds MNIST, else .cache/mnist."""
    shared = ROOT.parent / "shared" / "data"
    return shared if list((shared / "MNIST" / "raw").glob("t10k-labels-idx1-ubyte*")) else ROOT / ".cache" / "mnist"


def _write_pngs(job: tuple) -> int:
    from PIL import Image

    folder, start, images, labels = job
    for i, (x, y) in enumerate(zip(images, labels), start):
        Image.fromarray(x[0]).save(folder / str(y) / f"{i:05d}.png")
    return len(images)


def write_folder(raw, out: Path, n_train: int, n_test: int) -> float:
    """The first n_train / n_test images of `raw` as PNG files under `out`; seconds taken."""
    import multiprocessing

    jobs = []
    for split, x, y, n in (("train", raw.train_x, raw.train_y, n_train), ("test", raw.test_x, raw.test_y, n_test)):
        for d in range(10):
            (out / split / str(d)).mkdir(parents=True)
        jobs += [(out / split, i, x[i:min(i + 2000, n)], y[i:min(i + 2000, n)].tolist()) for i in range(0, n, 2000)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(len(os.sched_getaffinity(0))) as pool:
        pool.map(_write_pngs, jobs)
    return time.perf_counter() - t0


def cli_import(folder: Path, root: Path) -> tuple[dict, float]:
    """`tunelab data import-folder` in its own process: its --json record and the command's wall seconds."""
    exe = ROOT / ".venv/bin/tunelab"
    cmd = [str(exe) if exe.exists() else "tunelab", "data", "import-folder", str(folder), "--name", NAME, "--no-flip",
           "--json"]
    env = {**os.environ, "TUNELAB_DATA_DIR": str(root), "TUNELAB_REDIS_URL": ""}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"import-folder failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout), wall


def train(name: str, prepared, epochs: int | None = None) -> list[dict]:
    """One bare-loop run of RECIPE on dataset `name`; its per-epoch metrics."""
    from tunelab.jobs.config import make_config
    from tunelab.jobs.loop import run_training

    cfg = make_config(dataset=name, **{**RECIPE, **({"epochs": epochs} if epochs else {})})
    rows: list[dict] = []
    run_training(cfg, prepared, report=lambda m, s: rows.append(m))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="folder with the official MNIST files [../shared/data, else .cache/mnist]")
    ap.add_argument("--rounds", type=int, help="training rounds, one run per dataset each, order alternating [2; --quick: 1]")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4,000 train + 1,000 test images, 1 round, no write")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing RESULTS.md")
    a = ap.parse_args()

    from tunelab.jobs import data, datasets
    from tunelab.jobs.folders import import_folder

    src = a.data or mnist_dir()
    root = scratch_root("tl-folder-import-", src)
    raw = data.load("mnist", root)
    n_train, n_test = (4000, 1000) if a.quick else (len(raw.train_y), len(raw.test_y))
    rounds, subset, n = a.rounds or (1 if a.quick else 2), (4000 if a.quick else None), n_train + n_test
    cores = len(os.sched_getaffinity(0))

    folder = root / "mnist-png"
    print(f"writing {n:,} PNG files to {folder} …", flush=True)
    write_s = write_folder(raw, folder, n_train, n_test)
    print(f"  {write_s:.1f} s ({n / write_s:,.0f} images/s, {cores} processes)", flush=True)

    print(f"tunelab data import-folder {folder} --name {NAME} --no-flip --json …", flush=True)
    rec, cli_wall = cli_import(folder, root)
    print(f"  {rec['images_per_s']:,.0f} images/s decoding ({rec['seconds']:.1f} s), command wall {cli_wall:.1f} s; "
          f"{rec['train']:,} train / {rec['test']:,} test", flush=True)
    one = import_folder(folder, NAME + "_1w", root, flippable=False, workers=1)
    one_ips = one.images / one.seconds
    print(f"  workers=1 (Python API): {one_ips:,.0f} images/s ({one.seconds:.1f} s)", flush=True)

    datasets.use_root(root)
    png = data.load(NAME, root)
    # The folder's order is by class, then file name: sort the built-in's stably by label to compare pixel for pixel.
    order = raw.train_y[:n_train].argsort(kind="stable")
    same = bool((png.train_x == raw.train_x[:n_train][order]).all() and (png.train_y == raw.train_y[:n_train][order]).all())
    print(f"  imported train pixels and labels identical to MNIST's: {same}", flush=True)

    prepared = {"mnist": data.prepare(raw, "fine", 0.1, 0, subset), NAME: data.prepare(png, "fine", 0.1, 0, subset)}
    train("mnist", prepared["mnist"], epochs=1)  # untimed warm-up: a fresh process's first run starts slow
    runs: dict[str, list[list[dict]]] = {"mnist": [], NAME: []}
    for r in range(rounds):
        for name in ("mnist", NAME) if r % 2 == 0 else (NAME, "mnist"):
            rows = train(name, prepared[name])
            runs[name].append(rows)
            times = ", ".join(f"{m['train_time_s']:.2f}" for m in rows)
            print(f"round {r + 1} {name}: epochs {times} s, test {100 * rows[-1]['test_acc']:.2f} %", flush=True)

    med = {k: statistics.median(m["train_time_s"] for rows in v for m in rows) for k, v in runs.items()}
    ips = {k: statistics.median(m["images_per_s"] for rows in v for m in rows) for k, v in runs.items()}
    acc = {k: ", ".join(f"{100 * rows[-1]['test_acc']:.2f} %" for rows in v) for k, v in runs.items()}
    ratio = med[NAME] / med["mnist"]
    cmd = " ".join(["python benchmarks/folder_import.py", *sys.argv[1:]])
    body = "\n".join([
        f"## Importing an image folder: MNIST as {n:,} PNG files (`tunelab data import-folder`)",
        "",
        f"Command: `{cmd}` — MNIST from `{src}`.",
        "",
        (f"{n:,} images ({n_train:,} train + {n_test:,} test) written as `DIR/{{train,test}}/<digit>/<index>.png` "
         f"with PIL in {cores} processes: **{write_s:.1f} s** ({n / write_s:,.0f} images/s)."),
        "",
        "| import | decoding processes | images/s | decode s | wall s |",
        "| --- | ---: | ---: | ---: | ---: |",
        (f"| `tunelab data import-folder DIR --name {NAME} --no-flip --json` (own process) | {cores} | "
         f"**{rec['images_per_s']:,.0f}** | {rec['seconds']:.1f} | {cli_wall:.1f} (command) |"),
        f"| `jobs.folders.import_folder(..., workers=1)` (this process) | 1 | {one_ips:,.0f} | {one.seconds:.1f} | |",
        "",
        f"Imported training images and labels identical, pixel for pixel, to the built-in MNIST's: **{'yes' if same else 'NO'}**.",
        "",
        (f"Training, bare loop (`jobs.loop.run_training`, no Ray), {rounds} round(s) alternating the order after an "
         f"untimed warm-up epoch; the built-in MNIST recipe made explicit for both: `{json.dumps(RECIPE)}`. Both carve "
         "10 % for validation (seed 0); the imported folder lists its images by class, so the carved images differ."),
        "",
        "| dataset | runs | median epoch train s | img/s (median epoch) | test acc (each run) |",
        "| --- | ---: | ---: | ---: | --- |",
        *(f"| `{k}` | {len(runs[k])} | {med[k]:.2f} | {ips[k]:,.0f} | {acc[k]} |" for k in ("mnist", NAME)),
        "",
        (f"Folder ÷ built-in median epoch train time: **{ratio:.2f}** (goal ≤ {GOAL}: "
         f"{'met' if ratio <= GOAL else '**not met**'})."),
    ])
    print(body)
    if not (a.no_write or a.quick):
        write_section("folder-import", body)


if __name__ == "__main__":
    main()
