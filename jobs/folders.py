"""A user's own images as a dataset: `import_folder` reads the ImageFolder layout (one sub-folder per class, or
`train/` and `test/` each laid out so), decodes every image once, in parallel, into the uint8 arrays the built-ins
load into, and writes them with a manifest under `<data root>/imported/NAME/`. The dataset appears whole or not at
all: everything is written under a temporary name and renamed; `replace=True` swaps the manifest atomically.

`decode` is the one way an image file becomes an array: the import and `tunelab predict` both use it, so a file
predicted on is seen exactly as the files trained on were."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tunelab.jobs.datasets import BUILTINS, MANIFEST, check_name, get, imported_dir, names
from tunelab.jobs.errors import JobError
from tunelab.jobs.folder_layout import Layout, scan

MIN_SIDE = 8  # px: smaller images carry too little to resize from (a 1x1 "image" is a placeholder, not a sample)
SIZES = (16, 512)  # the stored side, as the model registry builds for
DEFAULT_SIZE = 64  # when the images are not all one square size and --size is not given
MEMORY_SHARE = 4  # arrays beyond 1/4 of this machine's memory are refused: a run holds up to three copies of them
SPLIT_SEED = 0
IN_PROCESS_BELOW = 2000  # files: fewer decode faster here than a pool of processes starts
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SIXTEEN_BIT = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def decode(data: bytes, channels: int, size: int) -> np.ndarray:
    """An image file's bytes as uint8 (channels, size, size): EXIF orientation applied; 16-bit values scaled to 8 bits;
    palette and alpha images flattened as torchvision's loader does (alpha dropped); grey (1 channel) or RGB; the
    shorter side resized (bilinear, antialiased) to `size` and the centre cropped square. Raises PIL's errors and
    `DecompressionBombWarning` (as an error) for what it cannot read."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("L" if channels == 1 else "RGB", (size, size))  # decode at a reduced scale when it can
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in SIXTEEN_BIT:
                im = Image.fromarray((np.asarray(im, dtype=np.float32) / 257.0).round().clip(0, 255).astype(np.uint8))
            elif im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                im = ImageOps.fit(im, (size, size), Image.Resampling.BILINEAR)
            a = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy takes it as it is
    return a[None] if channels == 1 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _header(path: str) -> tuple:
    """(width, height, mode) of an image file, or ("error", why) — read from its header, not decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size[0], im.size[1], im.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return ("error", f"is larger than PIL's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS:,} pixels); "
                         f"shrink it or remove it")
    except Exception as e:  # UnidentifiedImageError, OSError, SyntaxError, ValueError by format
        return ("error", f"is not a readable image ({type(e).__name__}); fix or remove it")


def _headers(paths: list[str]) -> list[tuple]:
    return [_header(p) for p in paths]


def _decode_files(paths: list[str], channels: int, size: int) -> tuple[bytes, list[str], Optional[tuple[int, str]]]:
    """The decoded images of `paths` as one byte block, each file's SHA-256, and (index, why) of the first that fails."""
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    digests = []
    for i, p in enumerate(paths):
        try:
            with open(p, "rb") as f:
                data = f.read()
            digests.append(hashlib.sha256(data).hexdigest())
            out[i] = decode(data, channels, size)
        except Exception as e:  # a truncated or corrupt file shows itself only when decoded
            return b"", digests, (i, f"cannot be decoded ({type(e).__name__}: {str(e)[:80]}); fix or remove it")
    return out.tobytes(), digests, None


# ------------------------------------------------------------------------------------------------ import


def _pool_map(fn, chunks: list, workers: int, say: Callable[[str], None], what: str, total: int, *args):
    """fn(chunk, *args) for every chunk, in order: in this process when the work is small, else in `workers`
    processes; a progress line at most every 5 s."""
    if workers <= 1 or total < IN_PROCESS_BELOW:
        return [fn(c, *args) for c in chunks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results, done, last = [], 0, time.monotonic()
    # spawn, not fork: the caller may hold torch's or Ray's threads, which a forked child would inherit mid-lock
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for c, r in zip(chunks, pool.map(fn, chunks, *([a] * len(chunks) for a in args))):
            results.append(r)
            done += len(c)
            if time.monotonic() - last > 5:
                say(f"{what}: {done:,}/{total:,} files")
                last = time.monotonic()
    return results


def memory_limit() -> int:
    """Bytes of arrays this machine may hold for one dataset: a share of its physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MEMORY_SHARE


def _check_headers(layout: Layout, workers: int, say) -> tuple[int, Optional[int]]:
    """(channels, common square size or None) from every image's header; JobError naming the first bad file."""
    paths = [str(p) for p in layout.all_files]
    chunks = [paths[i:i + 1000] for i in range(0, len(paths), 1000)]
    heads = [h for part in _pool_map(_headers, chunks, workers, say, "reading headers", len(paths)) for h in part]
    modes, sizes = Counter(), Counter()
    for p, h in zip(paths, heads):
        if h[0] == "error":
            raise JobError(f"{p} {h[1]}")
        w, hgt, mode = h
        if min(w, hgt) < MIN_SIDE:
            raise JobError(f"{p} is {w}x{hgt} px, too small to learn from (at least {MIN_SIDE} px a side); remove it")
        modes[mode] += 1
        sizes[(w, hgt)] += 1
    channels = 1 if set(modes) <= GREY_MODES else 3
    only = next(iter(sizes)) if len(sizes) == 1 else None
    return channels, only[0] if only and only[0] == only[1] and SIZES[0] <= only[0] <= SIZES[1] else None


def _carve_test(layout: Layout, fraction: float) -> dict[str, dict[str, list[Path]]]:
    """Train/test by class: a seeded, stratified share `fraction` of each class's files (at least one of a class
    with two or more) goes to test."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = {}, {}
    for c in layout.classes:
        files = layout.files["train"][c]
        n = len(files)
        k = min(max(1, round(n * fraction)), n - 1) if n >= 2 else 0
        pick = set(rng.permutation(n)[:k].tolist())
        test[c] = [f for i, f in enumerate(files) if i in pick]
        train[c] = [f for i, f in enumerate(files) if i not in pick]
    return {"train": train, "test": test}


@dataclass
class Imported:
    """What `import_folder` wrote: the dataset's name, its manifest, and how long decoding took."""

    name: str
    path: Path
    manifest: dict
    seconds: float

    @property
    def images(self) -> int:
        return sum(sum(c.values()) for c in self.manifest["counts"].values())


def import_folder(src: Path, name: str, root: Path, *, size: Optional[int] = None, channels: Optional[int] = None,
                  test_fraction: Optional[float] = None, flippable: bool = True, replace: bool = False,
                  max_memory: Optional[int] = None, workers: Optional[int] = None,
                  say: Callable[[str], None] = lambda line: None) -> Imported:
    """Import the image folder `src` as dataset `name` under data root `root`; what was written. JobError, with
    nothing written, for any problem: the layout, a file that is not a readable image, a name taken, the memory."""
    check_name(name)
    final = imported_dir(root, name)
    if (final / MANIFEST).is_file() and not replace:
        raise JobError(f"dataset {name!r} exists ({final}); pass --replace to swap it for this import, or choose "
                       f"another --name")
    _check_options(size, channels, test_fraction)
    layout = scan(src)
    if test_fraction is not None and "test" in layout.files:
        raise JobError(f"{src} has a test/ folder, which is the test split; --test-fraction applies only without one")
    workers = workers or len(os.sched_getaffinity(0))
    n = len(layout.all_files)
    found_channels, common = _check_headers(layout, workers, say)
    channels, size = channels or found_channels, size or common or DEFAULT_SIZE
    need, limit = n * channels * size * size, max_memory or memory_limit()
    if need > limit:
        raise JobError(f"{n:,} images at {channels}x{size}x{size} take {need / 2**30:.1f} GiB as arrays, beyond the "
                       f"{limit / 2**30:.1f} GiB this machine holds for one dataset (a quarter of its memory; "
                       f"--max-memory GIB to change); choose a smaller --size, or see docs for streaming from files")
    if n >= IN_PROCESS_BELOW:  # long enough to want a word first; a small import is said by its summary alone
        say(f"{src}: {n:,} images in {len(layout.classes)} classes, stored as {channels}x{size}x{size}"
            + _skipped_note(layout.skipped))
    parts = layout.files if "test" in layout.files else _carve_test(layout, 0.2 if test_fraction is None else test_fraction)
    t0 = time.monotonic()
    arrays, digest = _decode(parts, layout.classes, channels, size, workers, say)
    seconds = time.monotonic() - t0
    manifest = _manifest(name, layout, parts, arrays, channels, size, flippable, test_fraction, digest, seconds)
    _write(final, manifest, arrays, replace)
    return Imported(name, final, manifest, seconds)


def _check_options(size: Optional[int], channels: Optional[int], test_fraction: Optional[float]) -> None:
    if size is not None and not SIZES[0] <= size <= SIZES[1]:
        raise JobError(f"--size {size}: choose a side between {SIZES[0]} and {SIZES[1]} px (what the models build for)")
    if channels not in (None, 1, 3):
        raise JobError(f"--channels {channels}: choose 1 (grey) or 3 (RGB)")
    if test_fraction is not None and not 0 < test_fraction <= 0.9:
        raise JobError(f"--test-fraction {test_fraction:g}: choose a fraction above 0 and at most 0.9")


def _skipped_note(skipped: Counter) -> str:
    if not skipped:
        return ""
    kinds = ", ".join(f"{ext} x{k}" for ext, k in skipped.most_common(5))
    return f"; skipped {sum(skipped.values()):,} files that are not images ({kinds})"


def _decode(parts: dict, classes: list[str], channels: int, size: int, workers: int, say) -> tuple[dict, str]:
    """Every file of `parts` decoded: {train_x, train_y, test_x, test_y}, and a digest of the files' contents."""
    order = [(split, i, p) for split in ("train", "test") for i, c in enumerate(classes) for p in parts[split][c]]
    paths = [str(p) for _, _, p in order]
    step = 512
    chunks = [paths[i:i + step] for i in range(0, len(paths), step)]
    x = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    digests: list[str] = []
    for k, (block, shas, failed) in enumerate(_pool_map(_decode_files, chunks, workers, say, "decoding", len(paths),
                                                         channels, size)):
        if failed is not None:
            raise JobError(f"{chunks[k][failed[0]]} {failed[1]}")
        x[k * step:k * step + len(shas)] = np.frombuffer(block, dtype=np.uint8).reshape(-1, channels, size, size)
        digests += shas
    h = hashlib.sha256()
    for (split, label, p), sha in zip(order, digests):
        h.update(f"{split}/{classes[label]}/{p.name}\0{sha}\n".encode())
    y = np.array([label for _, label, _ in order], dtype=np.int64)
    n_train = sum(1 for s, _, _ in order if s == "train")
    return {"train_x": x[:n_train], "train_y": y[:n_train], "test_x": x[n_train:], "test_y": y[n_train:]}, h.hexdigest()


def _channel_stats(x: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, scaled to [0, 1], accumulated in chunks (no float copy of it all)."""
    total = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for i in range(0, len(x), 4096):
        part = x[i:i + 4096].astype(np.float64)
        total[0][:] += part.sum(axis=(0, 2, 3))
        total[1][:] += (part * part).sum(axis=(0, 2, 3))
    count = max(1, len(x) * x.shape[2] * x.shape[3])
    mean = total[0] / count
    std = np.sqrt(np.maximum(total[1] / count - mean ** 2, 0))
    return [round(float(m) / 255, 4) for m in mean], [round(max(float(s) / 255, 1e-3), 4) for s in std]


def _manifest(name, layout, parts, arrays, channels, size, flippable, test_fraction, digest, seconds) -> dict:
    mean, std = _channel_stats(arrays["train_x"])
    split = ({"kind": "folders"} if "test" in layout.files else
             {"kind": "stratified", "seed": SPLIT_SEED, "test_fraction": 0.2 if test_fraction is None else test_fraction})
    return {
        "format": 1, "name": name, "title": name, "classes": layout.classes, "channels": channels, "size": size,
        "flippable": flippable, "mean": mean, "std": std, "split": split,
        "counts": {s: {c: len(parts[s][c]) for c in layout.classes} for s in ("train", "test")},
        "source": {"path": str(Path(layout.root).resolve()), "files": len(layout.all_files),
                   "sha256": digest, "skipped": dict(layout.skipped)},
        "arrays": f"arrays-{digest[:16]}.npz", "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "decode_seconds": round(seconds, 2),
    }


def arrays_path(folder: Path) -> Path:
    """The arrays file an imported dataset's manifest names."""
    return Path(folder) / json.loads((Path(folder) / MANIFEST).read_text())["arrays"]


def _write(final: Path, manifest: dict, arrays: dict, replace: bool) -> None:
    """Write the dataset under a temporary name, then make it appear at once: a rename of the whole folder (new), or
    an atomic replace of the manifest, which names the new arrays file (`replace`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        np.savez(tmp / manifest["arrays"], **arrays)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        if not (final / MANIFEST).is_file():
            if final.exists():  # a folder left without a manifest holds no dataset
                shutil.rmtree(final)
            os.rename(tmp, final)
            return
        old = arrays_path(final)
        os.replace(tmp / manifest["arrays"], final / manifest["arrays"])
        os.replace(tmp / MANIFEST, final / MANIFEST)  # the switch: readers see the old dataset or the new one
        if old.name != manifest["arrays"]:
            old.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove(name: str, root: Path) -> Path:
    """Delete imported dataset `name` from data root `root` (runs and results that used it stay); the folder removed."""
    if name in BUILTINS:
        raise JobError(f"{name!r} is a built-in dataset; only imported datasets are removed (its files: "
                       f"{Path(root) / BUILTINS[name].folder})")
    folder = imported_dir(root, name)
    if not (folder / MANIFEST).is_file():
        imported = [n for n in names(root) if n not in BUILTINS]
        raise JobError(f"no imported dataset {name!r} in {root}; imported: {', '.join(imported) or 'none'}")
    get(name, root)
    gone = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-removing-", dir=folder.parent))
    os.replace(folder, gone / name)  # disappears at once; the files are deleted after
    shutil.rmtree(gone, ignore_errors=True)
    return folder
