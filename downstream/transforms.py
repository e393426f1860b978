"""The one training augmentation of GluonCV's segmentation recipe that mmseg lacks.

GluonCV's ``SegmentationDataset._sync_transform`` (the FCN set-up of the paper's
§6.2), after its random scale, crop and flip, blurs half of the crops: "gaussian
blur as in PSP", ``ImageFilter.GaussianBlur(radius=random.random())``.
"""
from __future__ import annotations

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomGaussianBlur(BaseTransform):
    """Blur the image (not the label map) with probability ``prob``, with a Gaussian
    whose sigma is drawn from U(0, ``max_sigma``). PIL's ``radius`` is the Gaussian's
    standard deviation, so sigma ~ U(0, 1) is GluonCV's draw."""

    def __init__(self, prob: float = 0.5, max_sigma: float = 1.0):
        if not 0.0 <= prob <= 1.0 or max_sigma < 0:
            raise ValueError(f"RandomGaussianBlur: prob {prob} must lie in [0, 1] and max_sigma {max_sigma} be >= 0")
        self.prob, self.max_sigma = prob, max_sigma

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.prob:
            sigma = np.random.uniform(0.0, self.max_sigma)
            if sigma > 0:
                results["img"] = cv2.GaussianBlur(results["img"], ksize=(0, 0), sigmaX=sigma, sigmaY=sigma)
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(prob={self.prob}, max_sigma={self.max_sigma})"
