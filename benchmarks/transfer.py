"""Transfer learning measured for real: tf_efficientnet_lite0 fine-tuned from its ImageNet weights vs trained
from scratch, on the same real-MNIST subset with the same budget (the bare loop: no Ray, one process).

    python benchmarks/transfer.py --data ../shared/data   # or a data root that already holds MNIST

Writes the "transfer" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import scratch_root, write_section
from tunelab.jobs import data
from tunelab.jobs.config import make_config
from tunelab.jobs.loop import run_training

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "tf_efficientnet_lite0.in1k.pth"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with the MNIST files (imported, MD5-checked)")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--subset", type=int, default=2000, help="training images (validation carved from them) and test images")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--input-sizes", default="28,112", help="comma-separated: 28 = native with small-image strides")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    a = ap.parse_args()

    root = scratch_root("tl-bench-transfer-", a.data)
    raw = data.load("mnist", root)
    rows = []
    for size in [int(s) for s in a.input_sizes.split(",")]:
        for pretrained in (str(a.weights), "false"):
            cfg = make_config(dataset="mnist", model="tf_efficientnet_lite0", epochs=a.epochs, subset=a.subset,
                              batch_size=a.batch_size, lr=a.lr, optimizer="adamw", pretrained=pretrained,
                              input_size=None if size == 28 else size, seed=0)
            prepared = data.prepare(raw, "fine", cfg.val_fraction, cfg.seed, cfg.subset)
            history = []
            t0 = time.perf_counter()
            run_training(cfg, prepared, report=lambda m, s, out=history: out.append(m))
            wall = time.perf_counter() - t0
            last = history[-1]
            row = {"input_px": size, "init": "ImageNet" if pretrained != "false" else "scratch",
                   "train_images": len(prepared.train_y), "test_images": last["test_images"],
                   "epochs": a.epochs, "val_acc": [round(m["val_acc"], 4) for m in history],
                   "test_acc": round(last["test_acc"], 4), "train_s": round(wall, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    cmd = " ".join(["python benchmarks/transfer.py", *sys.argv[1:]])
    lines = [
        "## Transfer: ImageNet-pretrained vs scratch (tf_efficientnet_lite0, real MNIST)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Same {a.subset}-image MNIST subset (10 % carved for validation), same {a.subset} test images, "
        f"same budget ({a.epochs} epochs, batch {a.batch_size}, AdamW lr {a.lr}, one-cycle), bare loop on CPU. "
        "Pretrained inputs are normalised as the weights expect (mean/std 0.5); 1-channel digits go through the "
        "summed RGB stem filters. 28 px: native size, stem and stage-2 strides set to 1; larger: inputs resized "
        "on the fly, ImageNet layout kept.",
        "",
        "| input px | init | test acc | val acc by epoch | train+eval s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['input_px']} | {r['init']} | **{100 * r['test_acc']:.2f} %** | "
                     f"{', '.join(f'{100 * v:.1f}' for v in r['val_acc'])} | {r['train_s']} |")
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section("transfer", body)


if __name__ == "__main__":
    main()
