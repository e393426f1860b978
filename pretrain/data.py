"""ImageNet-layout classification data and the paper's transforms (He et al. 2019, §2.1).

The reader is torchvision's ``ImageFolder`` over ``<root>/<split>/<class>/*``,
the layout of ImageNet's train set (and of its val set once sorted into class
folders), with errors that name the file and the fix.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets, transforms
from trickbench.errors import TrickBenchError

# torchvision's ImageNet constants on [0, 1] tensors: (123.675, 116.28, 103.53) and
# (58.395, 57.12, 57.375) on [0, 255], which is what mmdet's and mmseg's data
# preprocessors use, so pretraining and fine-tuning see the same input. The paper
# (§2.1) gives mean (123.68, 116.779, 103.939): that is 0.4850, 0.4580, 0.4076 on
# [0, 1], 0.0016-0.0020 above these in green and blue, a difference kept on purpose.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# PCA of ImageNet's RGB pixels on [0, 1] (AlexNet's lighting noise, as in GluonCV and fb.resnet.torch).
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))

LAYOUT = "<root>/{split}/<class>/<image>.JPEG  (one folder per class, e.g. train/n01440764/n01440764_10026.JPEG)"


class DatasetError(TrickBenchError, RuntimeError):
    """A dataset that is missing, empty or damaged; the message names the path and the fix."""


class Lighting:
    """PCA lighting noise (Krizhevsky et al. 2012; He et al. 2019, §2.1): add
    ``eigvec @ (alpha * eigval)`` with ``alpha ~ N(0, std)`` per image to every pixel."""

    def __init__(self, std: float = 0.1):
        self.std = std
        self.eigval = torch.tensor(PCA_EIGVAL)
        self.eigvec = torch.tensor(PCA_EIGVEC)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.std == 0:
            return img
        alpha = torch.randn(3) * self.std
        rgb = self.eigvec @ (alpha * self.eigval)
        return img + rgb.view(3, 1, 1)

    def __repr__(self) -> str:
        return f"Lighting(std={self.std})"


def train_transform(image_size: int, augment: str) -> transforms.Compose:
    """§2.1: RandomResizedCrop (8%-100% area, 3/4-4/3 aspect), flip, colour jitter
    with coefficients in [0.6, 1.4], PCA lighting noise, normalisation.

    The jitter follows GluonCV's reference script (brightness, contrast and
    saturation scaled by U[0.6, 1.4]); the paper's text names hue instead of
    contrast, which torchvision can only shift, not scale.
    """
    if augment == "none":
        return val_transform(image_size, image_size)
    if augment == "flip":
        return flip_transform(image_size)
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        transforms.ToTensor(),
        Lighting(0.1),
        transforms.Normalize(MEAN, STD),
    ])


def flip_transform(image_size: int) -> transforms.Compose:
    """For images of a few dozen pixels trained for a few epochs (Fashion-MNIST): resize
    to ``image_size`` and flip, nothing else. §2.1's crops down to 8% of the area leave a
    few pixels of a 32-pixel item; the Fashion-MNIST photos already vary in tint, place
    and background, which is what colour jitter and PCA lighting would add; even 4-pixel
    pad-and-crop (He et al. 2016, §4.2) cost about 5 points of top-1 after one pass over
    20,000 bare Fashion-MNIST items (71.5% against 75.8%)."""
    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


def val_transform(image_size: int, resize: int) -> transforms.Compose:
    """§2.1: resize the shorter side to ``resize`` keeping the aspect, center crop ``image_size``."""
    return transforms.Compose([
        transforms.Resize(resize),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


def load_rgb(path: str) -> Image.Image:
    """Decode an image fully, or raise a :class:`DatasetError` that names the file."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"corrupt or unreadable image {path}: {e}. Replace it with a good copy "
                           f"(re-extract the archive) or delete it and restart the run.") from e


def image_folder(root: str | Path, split: str, transform, classes: list[str] | None = None) -> datasets.ImageFolder:
    """``ImageFolder`` over ``root/split`` with a clear error for a missing or empty
    split; with ``classes`` (the train split's), the folder must hold exactly those."""
    path = Path(root) / split
    if not path.is_dir():
        raise DatasetError(f"dataset split not found: {path} does not exist. Expected the ImageNet layout "
                           f"{LAYOUT.format(split=split)}; set data.root (--cfg-options data.root=DIR) "
                           f"or generate a small one with: python -m trickbench.datasets shapes --out data")
    try:
        ds = datasets.ImageFolder(str(path), transform=transform, loader=load_rgb)
    except (FileNotFoundError, RuntimeError) as e:
        raise DatasetError(f"no images under {path}: {e}. Expected {LAYOUT.format(split=split)}") from e
    if classes is not None and ds.classes != classes:
        missing, extra = sorted(set(classes) - set(ds.classes)), sorted(set(ds.classes) - set(classes))
        raise DatasetError(f"the class folders of {path} differ from those of the train split: "
                           f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                           f"extra {extra[:5]}{'...' if len(extra) > 5 else ''}")
    return ds


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 100_003 + index) % 2**63


def seeded(seed: int, load):
    """``load()`` with torch's CPU generator seeded to ``seed``: a loader worker's stream is its
    own; in the main process the stream goes on afterwards as if untouched. Only the CPU generator
    is seeded (1 us; ``torch.manual_seed`` also seeds every device, 80 us): the draws are on the CPU."""
    if torch.utils.data.get_worker_info() is not None:
        torch.default_generator.manual_seed(seed)
        return load()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return load()


class SeededSamples(torch.utils.data.Dataset):
    """Each training sample's random draws (crop, flip, jitter, lighting: torchvision's
    transforms draw from torch's generator) derive from (seed, epoch, sample index) alone,
    not from which loader worker reads it: results do not depend on ``data.workers``, and
    a resumed run may use another number of workers. Set the epoch before each pass."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return seeded(sample_seed(self.seed, self.epoch, index), lambda: self.dataset[index])


def worker_error_message(error: Exception) -> str:
    """A DataLoader worker's exception is raised again in the main process with the worker's
    whole traceback in its message; the message the worker raised is its last line."""
    text = str(error)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last
