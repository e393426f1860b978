"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017; Zalando, MIT licence): its four IDX files,
found or fetched without root, checked, and read.

Where the files come from, first match wins:

1. the system copy of the Debian/Ubuntu package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist/``; ``$TRICKBENCH_FASHION_SYSTEM_DIR`` overrides);
2. the suite's cache, ``cache_dir()/fashion-mnist/``;
3. ``apt-get download dataset-fashion-mnist`` (no root needed) unpacked with
   ``dpkg-deb -x``, the four files then moved into the cache;
4. torchvision's ``FashionMNIST(download=True)`` (needs the internet), into the cache.

Each file is checked against the published MD5 of its *decompressed* IDX payload (the
Debian package recompresses Zalando's ``.gz`` files, so the ``.gz`` MD5s torchvision
lists differ; the payloads are identical) and a SHA-256 of that payload. Any problem is a
:class:`FashionMNISTError` that names the file and the fix.

CLI (:mod:`trickbench.datasets.cli`)::

    python -m trickbench.datasets fetch                      # find or fetch, check, print the folder
    python -m trickbench.datasets fashion --out data/fashion  # fetch, then write the three datasets
"""
from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trickbench.cache import cache_dir
from trickbench.datasets.base import DataGenError

__all__ = ["CLASSES", "FILES", "FashionMNISTError", "Split", "fashion_dir", "fetch", "load", "read_idx"]

#: The ten classes, in label order (Zalando's README).
CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                            "Sneaker", "Bag", "Ankle boot")

#: split -> (images file, labels file)
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
COUNTS = {"train": 60_000, "test": 10_000}

#: file -> (MD5, SHA-256) of the decompressed IDX payload. The MD5s are the published ones
#: (Zalando's files, as listed e.g. by tensorflow-datasets-style loaders); the SHA-256s were
#: computed from the Debian package 0.0~git20200523.55506a9-1, whose payloads match those MD5s.
CHECKSUMS: dict[str, tuple[str, str]] = {
    "train-images-idx3-ubyte.gz": ("f4a8712d7a061bf5bd6d2ca38dc4d50a",
                                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte.gz": ("9018921c3c673c538a1fc5bad174d6f9",
                                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte.gz": ("8181f5470baa50b63fa0f6fddb340f0a",
                                  "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte.gz": ("15d484375f8d13e6eb1aabb0c3f46965",
                                  "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SYSTEM_DIR_ENV = "TRICKBENCH_FASHION_SYSTEM_DIR"
PACKAGE = "dataset-fashion-mnist"
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


class FashionMNISTError(DataGenError):
    """Fashion-MNIST is missing, cannot be fetched, or a file of it is damaged; the
    message names the file and the fix."""


def system_dir() -> Path:
    return Path(os.environ.get(SYSTEM_DIR_ENV) or SYSTEM_DIR)


def fashion_dir() -> Path:
    """Where the suite keeps its own copy: ``cache_dir()/fashion-mnist``."""
    return cache_dir() / "fashion-mnist"


def _names() -> list[str]:
    return [name for pair in FILES.values() for name in pair]


def _fix(path: Path) -> str:
    if path.parent == fashion_dir():
        return f"delete {path} and fetch it again: python -m trickbench.datasets fetch"
    if path.parent == system_dir():
        return (f"reinstall the package (apt-get install --reinstall {PACKAGE}), or copy good files into "
                f"{fashion_dir()} and set {SYSTEM_DIR_ENV} to an empty folder")
    return f"delete {path} and fetch it again"


def _payload(path: Path) -> bytes:
    """The decompressed bytes of one ``.gz`` file."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FashionMNISTError(f"{path} is missing; fetch it: python -m trickbench.datasets fetch") from None
    except (EOFError, OSError, zlib.error) as e:
        raise FashionMNISTError(f"{path} is truncated or not a valid gzip file ({e}); {_fix(path)}") from None


def verify(path: Path, payload: bytes | None = None) -> bytes:
    """The file's decompressed payload, after checking it against :data:`CHECKSUMS`."""
    data = _payload(path) if payload is None else payload
    md5, sha = CHECKSUMS[path.name]
    got = hashlib.sha256(data).hexdigest()
    if got != sha or hashlib.md5(data).hexdigest() != md5:
        raise FashionMNISTError(f"{path} fails its checksum (decompressed SHA-256 {got}, expected {sha}): the file "
                               f"is damaged or not Fashion-MNIST's; {_fix(path)}")
    return data


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _names())


def _verify_all(folder: Path) -> Path:
    for name in _names():
        verify(folder / name)
    return folder


def _move_into_cache(src: Path) -> Path:
    """Check the four files in ``src``, then move each into the cache with ``os.replace``:
    the cache holds either a good file or none, never part of one."""
    _verify_all(src)
    dest = fashion_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in _names():
        tmp = dest / f".{name}.{secrets.token_hex(4)}.tmp"
        shutil.copyfile(src / name, tmp)  # src may be on another file system
        os.replace(tmp, dest / name)
    return dest


def _from_apt(work: Path) -> tuple[Path | None, str]:
    """``apt-get download`` + ``dpkg-deb -x`` in ``work``: (folder of the four files, or None; what happened)."""
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        return None, "apt-get download: apt-get or dpkg-deb is not installed"
    try:
        got = subprocess.run([apt, "download", PACKAGE], cwd=work, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"apt-get download {PACKAGE}: {e}"
    debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
    if got.returncode != 0 or not debs:
        last = (got.stderr.strip().splitlines() or ["no .deb written"])[-1]
        return None, f"apt-get download {PACKAGE} failed: {last}"
    unpacked = work / "unpacked"
    got = subprocess.run([dpkg, "-x", str(debs[-1]), str(unpacked)], capture_output=True, text=True)
    folder = unpacked / str(SYSTEM_DIR).lstrip("/")
    if got.returncode != 0 or not _complete(folder):
        return None, f"dpkg-deb -x {debs[-1].name} did not give the four files under {SYSTEM_DIR} ({got.stderr.strip()})"
    return folder, f"apt-get download {PACKAGE}"


def _from_torchvision(work: Path) -> tuple[Path | None, str]:
    """torchvision's own download (its mirrors need the internet)."""
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(work), train=True, download=True)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError... for the same cause
        return None, f"torchvision FashionMNIST(download=True) failed: {type(e).__name__}: {e}"
    folder = work / "FashionMNIST" / "raw"
    if not _complete(folder):
        return None, f"torchvision's download left no .gz files in {folder}"
    return folder, "torchvision FashionMNIST(download=True)"


def fetch(verbose: bool = False, check: bool = True) -> Path:
    """The folder holding the four ``.gz`` files: the system copy, the cache, or a fresh
    fetch into the cache (apt, then torchvision). Files found are checked unless ``check``
    is False (:func:`load` checks what it reads); fetched files are always checked."""
    say = print if verbose else (lambda *a, **k: None)
    for folder in (system_dir(), fashion_dir()):
        if _complete(folder):
            return _verify_all(folder) if check else folder
    cache = fashion_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FashionMNISTError(f"cannot create the cache folder {cache}: {e.strerror or e}; set TRICKBENCH_CACHE "
                                f"to a writable folder") from e
    tried = []
    for source in (_from_apt, _from_torchvision):
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
            folder, what = source(Path(tmp))
            if folder is not None:
                say(f"fashion-mnist: fetched with {what} into {cache}", flush=True)
                return _move_into_cache(folder)
            say(f"fashion-mnist: {what}", flush=True)
            tried.append(what)
    raise FashionMNISTError(
        "Fashion-MNIST is not installed and could not be fetched:\n  " + "\n  ".join(tried) + "\n"
        f"Fix one of: install the package (sudo apt-get install {PACKAGE}, files under {SYSTEM_DIR}); "
        f"run apt-get update once so that 'apt-get download {PACKAGE}' finds it; or copy the four files "
        f"{', '.join(_names())} (from https://github.com/zalandoresearch/fashion-mnist) into {cache}")


def read_idx(path: Path, payload: bytes, magic: int, count: int | None = None) -> np.ndarray:
    """An IDX array (uint8) after checking its header: magic, and a size that matches its dims."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise FashionMNISTError(f"{path} is truncated: {len(payload)} bytes, less than its IDX header; {_fix(path)}")
    got_magic = int.from_bytes(payload[:4], "big")
    if got_magic != magic:
        raise FashionMNISTError(f"{path} is not an IDX file of this kind (magic 0x{got_magic:08x}, expected "
                               f"0x{magic:08x}); {_fix(path)}")
    dims = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if count is not None and dims[0] != count:
        raise FashionMNISTError(f"{path} holds {dims[0]} items, expected {count}; {_fix(path)}")
    size = int(np.prod(dims))
    if len(payload) != header + size:
        raise FashionMNISTError(f"{path} is truncated or padded: {len(payload) - header} data bytes for dims {dims} "
                               f"({size} expected); {_fix(path)}")
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, 28, 28) uint8, bright item on a black background
    labels: np.ndarray  # (N,) uint8 in 0..9


def load(split: str, folder: Path | None = None) -> Split:
    """The checked ``train`` (60,000) or ``test`` (10,000) split."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, not {split!r}")
    folder = fetch(check=False) if folder is None else folder
    img_path, lab_path = (folder / name for name in FILES[split])
    images = read_idx(img_path, verify(img_path), _IMAGES_MAGIC)
    labels = read_idx(lab_path, verify(lab_path), _LABELS_MAGIC, count=images.shape[0])
    if images.shape[1:] != (28, 28):
        raise FashionMNISTError(f"{img_path} holds {images.shape[1:]} images, not 28x28; {_fix(img_path)}")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise FashionMNISTError(f"{lab_path} has label {int(labels.max())}, above the 10 classes; {_fix(lab_path)}")
    return Split(images, labels)
