"""The transfer protocols: one table of what each one trains, freezes and reports.

A study measures a backbone downstream by one or more protocols (``downstream.protocols``),
and every downstream ``result.json`` records the one it ran (``protocol``: its name and
these settings). The names are fixed:

==============  ==============  ================================================================
name            stage           what it is
==============  ==============  ================================================================
``finetune``    detection,      the config as it is: backbone, neck and heads trained (mmdet's
                segmentation    configs freeze the stem and BN, ``frozen_stages=1``)
``frozen``      detection,      the whole backbone frozen (weights, BatchNorm statistics and
                segmentation    affine parameters; ``frozen_stages=4``, and the C4 detector's
                                res5 in its RoI head too); neck and heads trained, same schedule
``knn``         probe           ImageNet k-NN top-1 as DINO's ``eval_knn.py`` (k = 20, T = 0.07)
``voc07-svm``   probe           VOC07 classification, linear SVMs per class (VISSL / Goyal 2019)
``ade-linear``  segmentation    BatchNorm + 1x1 conv on the frozen last stage (DINOv2's linear
                                head), trained with mmseg on its own shorter schedule
==============  ==============  ================================================================

``linear`` in a study is shorthand for the three probes (``knn``, ``voc07-svm``, ``ade-linear``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import TrickBenchError


class ProtocolError(TrickBenchError, ValueError):
    pass


@dataclass(frozen=True)
class Protocol:
    name: str
    stages: tuple[str, ...]        # the result stages it writes (detection, segmentation, probe)
    trained: bool                  # trained with a seed (fine-tune seeds apply) or deterministic
    trains: str                    # what is trained
    frozen: str                    # what is frozen
    batchnorm: str                 # the backbone's BatchNorm during training / feature extraction
    metric: str                    # what is reported

    def record(self, **settings) -> dict:
        """The ``protocol`` entry of a ``result.json``: the table's row and the run's own settings."""
        return asdict(self) | settings


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("finetune", ("detection", "segmentation"), True,
             trains="backbone (less the stages the config freezes), neck and heads",
             frozen="the config's frozen_stages (mmdet's Faster R-CNN configs: the stem and res2, frozen_stages=1; "
                    "mmseg's FCN: none)",
             batchnorm="the config's norm_cfg and norm_eval (mmdet's FPN: statistics frozen, affine parameters "
                       "trained; the paper's C4: both frozen; mmseg's FCN: both trained)",
             metric="detection: VOC07 mAP@0.5 (11-point) on VOC2007 test; segmentation: mIoU on ADE20K val"),
    Protocol("frozen", ("detection", "segmentation"), True,
             trains="neck and heads only, with the fine-tune's config and schedule",
             frozen="the whole backbone: stem and all four stages (frozen_stages=4; the C4 detector's res5, which "
                    "runs as the RoI head's shared_head, frozen there too): weights, BatchNorm statistics and "
                    "affine parameters",
             batchnorm="eval mode: the pretrained statistics, not updated",
             metric="as finetune"),
    Protocol("knn", ("probe",), False,
             trains="nothing",
             frozen="the whole backbone",
             batchnorm="eval mode",
             metric="ImageNet val top-1 of a weighted k-NN on the train split's features (DINO eval_knn: global "
                    "average pool, L2-normalised, cosine similarity, k=20, votes exp(sim/0.07))"),
    Protocol("voc07-svm", ("probe",), False,
             trains="one linear SVM per class (scikit-learn LinearSVC, squared hinge, class weights {1: 2, -1: 1}, "
                    "cost by 3-fold cross-validation on VOC2007 trainval)",
             frozen="the whole backbone",
             batchnorm="eval mode",
             metric="VOC2007 test classification mAP: VOC07 11-point interpolated AP per class, difficult images "
                    "ignored (last-stage features average-pooled to 2x2, L2-normalised)"),
    Protocol("ade-linear", ("segmentation",), True,
             trains="BatchNorm + 1x1 convolution on the last stage's features at the FCN's output stride "
                    "(DINOv2's BNHead), with mmseg, on its own config's shorter schedule",
             frozen="the whole backbone (frozen_stages=4): weights, BatchNorm statistics and affine parameters",
             batchnorm="eval mode: the pretrained statistics, not updated",
             metric="mIoU on ADE20K val (mmseg IoUMetric)"),
)}
LINEAR = ("knn", "voc07-svm", "ade-linear")      # what ``linear`` stands for in a study
PROBES = ("knn", "voc07-svm")                    # deterministic, run once per backbone by downstream/probe.py
DEFAULT = "finetune"


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; protocols: {', '.join(PROTOCOLS)} (and 'linear' for "
                            f"{', '.join(LINEAR)})")
    return PROTOCOLS[name]


def expand(names) -> tuple[str, ...]:
    """The protocols a study's list names, ``linear`` expanded, in the table's order."""
    wanted = set()
    for n in names:
        if n == "linear":
            wanted.update(LINEAR)
        else:
            wanted.add(get(n).name)
    return tuple(n for n in PROTOCOLS if n in wanted)


def name_of(record: dict | None) -> str:
    """A result's protocol name (files from before protocols were recorded: ``finetune``)."""
    return (record or {}).get("name", DEFAULT)
