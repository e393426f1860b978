"""Hyperparameters chosen on held-out training data, never on the test split (VTAB's protocol:
select on a held-out part of the training set, then refit on all of it).

* :func:`apply_heldout` turns a fine-tuning config into a **trial**'s: a seeded fraction of the
  training images (the same for every backbone: it depends on the image ids, the fraction and
  the seed only) is held out, written as split files the real readers take (mmdet's
  ``VOCDataset`` and mmseg's ``BaseSegDataset`` read ``ann_file`` lists), the model trains on
  the rest and is validated on the held-out part. The test split is not in the config any more.
* :func:`choose` reads the trials' results and picks the grid point with the best mean
  held-out score over the backbones it is given (a recipe's, or one backbone's).

VOC: the ids of VOC2007 + VOC2012 trainval (every training ``ann_file``) are pooled and one
fraction of the pool is held out, so both years give held-out images in proportion. ADE20K:
the training images (the ``ann_file`` list where the config has one, else the image folder,
as mmseg lists it).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trickbench import results
from trickbench.errors import TrickBenchError
from trickbench.fileio import atomic_write_bytes

from .datacheck import dataset_cfgs

SPLIT_SEED = 0          # the held-out split's seed: one split for every backbone and trial of a study
SPLIT_DIR = "split"     # in the trial's work dir: the training and held-out id lists it used


class SelectionError(TrickBenchError, ValueError):
    """A held-out split or a choice that cannot be made; the message names the file and the fix."""


@dataclass(frozen=True)
class Leaf:
    """One training dataset of the config and the image ids it reads."""
    name: str                   # a file-name stem: VOC2007, VOC2012, training
    cfg: dict                   # the dataset config (a copy)
    ids: tuple[str, ...]


def _leaf_name(ds: dict, i: int) -> str:
    sub = (ds.get("data_prefix") or {}).get("sub_data_root") or (ds.get("data_prefix") or {}).get("img_path") or ""
    name = Path(str(sub).rstrip("/")).name or f"dataset{i}"
    return name


def training_leaves(cfg) -> list[Leaf]:
    """The training datasets of ``cfg`` and their image ids, as the readers would list them."""
    leaves = []
    for i, ds in enumerate(dataset_cfgs(cfg.train_dataloader["dataset"])):
        root = Path(ds["data_root"])
        ann = ds.get("ann_file") or ""
        if ann:
            path = root / ann
            if not path.is_file():
                raise SelectionError(f"training split list {path} not found; the held-out split is drawn from it "
                                     f"(check --data-root)")
            ids = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
        else:  # mmseg without ann_file: every image of the folder, recursively, by name
            img_dir = root / ds["data_prefix"]["img_path"]
            suffix = ds.get("img_suffix", ".jpg")
            if not img_dir.is_dir():
                raise SelectionError(f"training image folder {img_dir} not found (check --data-root)")
            ids = sorted(str(p.relative_to(img_dir))[:-len(suffix)] for p in img_dir.rglob(f"*{suffix}"))
        if not ids:
            raise SelectionError(f"training dataset {ann or ds['data_prefix']} under {root} lists no images")
        leaves.append(Leaf(_leaf_name(ds, i), copy.deepcopy(dict(ds)), tuple(ids)))
    names = [leaf.name for leaf in leaves]
    if len(set(names)) != len(names):
        leaves = [Leaf(f"{leaf.name}-{i}", leaf.cfg, leaf.ids) for i, leaf in enumerate(leaves)]
    return leaves


def draw(leaves: list[Leaf], fraction: float, seed: int = SPLIT_SEED) -> dict[str, set[str]]:
    """The held-out ids of each leaf: ``round(fraction * N)`` of the N pooled (leaf, id) pairs,
    sorted then permuted by ``numpy.random.default_rng(seed)``; at least one, never all."""
    pool = sorted((leaf.name, i) for leaf in leaves for i in leaf.ids)
    n = min(len(pool) - 1, max(1, round(fraction * len(pool))))
    if n < 1:
        raise SelectionError(f"the training set has {len(pool)} image(s): too few to hold any out")
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    out: dict[str, set[str]] = {leaf.name: set() for leaf in leaves}
    for k in order:
        name, img = pool[k]
        out[name].add(img)
    return out


def apply_heldout(cfg, fraction: float, work_dir: Path, seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Make ``cfg`` a trial's: train on the training set less the held-out part, validate and
    test on the held-out part. Writes the split files into ``work_dir/split`` and returns the
    record a trial's result keeps (``heldout``)."""
    if not 0 < fraction <= 0.5:
        raise SelectionError(f"--heldout {fraction}: the held-out fraction must be in (0, 0.5]")
    leaves = training_leaves(cfg)
    held = draw(leaves, fraction, seed)
    folder = Path(work_dir) / SPLIT_DIR
    files: dict[str, dict[str, str]] = {}
    val_leaves = []
    val_cfg = cfg.val_dataloader["dataset"]
    val_leaf = next(iter(dataset_cfgs(val_cfg)), None) or {}
    for leaf, ds in zip(leaves, dataset_cfgs(cfg.train_dataloader["dataset"])):
        train_ids = [i for i in leaf.ids if i not in held[leaf.name]]
        heldout_ids = [i for i in leaf.ids if i in held[leaf.name]]
        paths = {}
        for part, ids in (("train", train_ids), ("heldout", heldout_ids)):
            path = folder / f"{leaf.name}-{part}.txt"
            atomic_write_bytes(path, "".join(f"{i}\n" for i in ids).encode())
            paths[part] = str(path.resolve())
        files[leaf.name] = paths
        ds["ann_file"] = paths["train"]
        if heldout_ids:
            v = copy.deepcopy(leaf.cfg)
            v["ann_file"] = paths["heldout"]
            v["test_mode"] = True
            v.pop("filter_cfg", None)
            if "pipeline" in val_leaf:
                v["pipeline"] = copy.deepcopy(val_leaf["pipeline"])
            val_leaves.append(v)
    # mmengine's ConcatDataset keeps one metainfo only where its datasets agree; VOC2007 and VOC2012
    # differ in dataset_type, which mmdet's VOC0712 config ignores for training: the same here
    ignore = _concat_ignore_keys(cfg.train_dataloader["dataset"])
    dataset = val_leaves[0] if len(val_leaves) == 1 else dict(type="ConcatDataset", ignore_keys=ignore,
                                                              datasets=val_leaves)
    cfg.val_dataloader["dataset"] = dataset
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    n_held = sum(len(h) for h in held.values())
    n_all = sum(len(leaf.ids) for leaf in leaves)
    return {"fraction": fraction, "seed": seed, "images": n_all, "heldout_images": n_held, "files": files}


def _concat_ignore_keys(node) -> list[str]:
    if isinstance(node, dict):
        if node.get("type") == "ConcatDataset" and node.get("ignore_keys"):
            return list(node["ignore_keys"])
        return _concat_ignore_keys(node.get("dataset"))
    return ["dataset_type"]


# ---------------------------------------------------------------- the choice


def choose(trial_dirs: list[Path], metric: str) -> dict[str, Any]:
    """The grid point with the highest mean held-out ``metric`` over the trials in
    ``trial_dirs`` (ties: the first in the grid's order), and the record a final result
    keeps (``selection``): the grid, every trial's values and score, the choice."""
    trials = []
    for d in trial_dirs:
        path = Path(d) / results.NAME
        try:
            res = results.read(path)
        except results.ResultError as e:
            raise SelectionError(f"{e}") from None
        if not res.is_trial or "values" not in res.heldout:
            raise SelectionError(f"{path} is not a hyperparameter trial (no heldout record); --select-from takes the "
                                 f"trials' work dirs")
        trials.append(res)
    if not trials:
        raise SelectionError("--select-from names no trials")
    grid: list[dict] = []
    scores: dict[int, list[float]] = {}
    for res in trials:
        values = res.heldout["values"]
        if values not in grid:
            grid.append(values)
        scores.setdefault(grid.index(values), []).append(res.metrics[metric])
    counts = {len(v) for v in scores.values()}
    if len(counts) != 1:
        raise SelectionError(f"the trials in {', '.join(map(str, trial_dirs))} do not give every grid point the same "
                             f"number of backbones ({sorted(len(v) for v in scores.values())}); rerun the missing trials")
    means = [float(np.mean(scores[g])) for g in range(len(grid))]  # the grid in the order the trials were given
    if not all(math.isfinite(m) for m in means):
        raise SelectionError("a trial's held-out score is not finite")
    best = max(range(len(grid)), key=lambda g: (means[g], -g))
    first = trials[0].heldout
    return {
        "metric": metric,
        "split": {"fraction": first.get("fraction"), "seed": first.get("seed"), "files": first.get("files", {})},
        "grid": grid,
        "trials": [{"backbone": r.backbone, "values": r.heldout["values"], "heldout_score": r.metrics[metric],
                    "finetune_seed": r.finetune_seed, "dir": str(r.run_dir)} for r in trials],
        "mean_heldout_score": means,
        "chosen": grid[best],
        "backbones": sorted({r.backbone for r in trials}),
    }
