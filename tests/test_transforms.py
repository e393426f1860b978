"""The GluonCV augmentation that mmseg lacks: on, off, and only the image."""
import numpy as np
import pytest

from downstream.transforms import RandomGaussianBlur


def sample():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    seg = rng.integers(0, 150, size=(32, 48), dtype=np.uint8)
    return dict(img=img.copy(), gt_seg_map=seg.copy()), img, seg


def test_blur_off_leaves_the_image_alone():
    results, img, seg = sample()
    out = RandomGaussianBlur(prob=0.0)(results)
    assert np.array_equal(out["img"], img) and np.array_equal(out["gt_seg_map"], seg)


def test_blur_on_smooths_the_image_and_not_the_labels():
    np.random.seed(0)
    results, img, seg = sample()
    out = RandomGaussianBlur(prob=1.0, max_sigma=1.0)(results)
    assert out["img"].shape == img.shape and out["img"].dtype == np.uint8
    rough = lambda a: np.abs(np.diff(a.astype(np.float32), axis=1)).mean()  # noqa: E731
    assert rough(out["img"]) < 0.9 * rough(img)
    assert np.array_equal(out["gt_seg_map"], seg)


def test_blur_rate_and_sigma_follow_the_arguments(monkeypatch):
    import downstream.transforms as t

    sigmas = []
    monkeypatch.setattr(t.cv2, "GaussianBlur", lambda img, ksize, sigmaX, sigmaY: sigmas.append(sigmaX) or img)
    np.random.seed(1)
    blur = RandomGaussianBlur(prob=0.3, max_sigma=0.8)
    for _ in range(400):
        blur(sample()[0])
    assert 90 < len(sigmas) < 150  # Binomial(400, 0.3): mean 120, sd 9
    assert 0 < min(sigmas) and max(sigmas) <= 0.8 and max(sigmas) > 0.6  # U(0, 0.8)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="prob"):
        RandomGaussianBlur(prob=1.5)
