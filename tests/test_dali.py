"""The DALI input pipeline (``data.backend="dali"``, :mod:`pretrain.dali`).

Without DALI (CI): the batch-end colour jitter against torchvision's own functions, the feed's
draws against the CPU path's, the crop draws' distribution, the errors. With DALI (its
CPU-only pipelines need no GPU): the loader's batches against the CPU path's; with a GPU as well,
the nvJPEG path and the absence of host syncs in the batch's end.
"""
from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torch.utils.data.distributed import DistributedSampler
from torchvision.transforms.v2 import functional as TF

from pretrain import dali
from pretrain import pipeline as pl
from pretrain.data import DatasetError, sample_seed

ADJUST = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)


def need_dali(gpu: bool) -> None:
    reason = dali.dali_missing(gpu=gpu)
    if reason is not None:
        pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# The batch's end, without DALI


def reference_jitter(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's functions, image by image, in each image's drawn order (3, hue: none)."""
    out = []
    for img, ops, fs in zip(x, order.tolist(), factors.tolist()):
        for op in ops:
            if op < 3:
                img = ADJUST[op](img, fs[op])
        out.append(img)
    return torch.stack(out)


def test_jitter_batch_is_torchvisions_per_image():
    g = torch.Generator().manual_seed(0)
    order = torch.tensor(list(itertools.permutations(range(4))))         # every order, so every op in every place
    n = len(order)
    x = torch.rand(n, 3, 12, 20, generator=g)
    factors = 0.6 + 0.8 * torch.rand(n, 3, generator=g)
    factors[0] = torch.tensor([1.4, 1.4, 1.4])                           # clamps at 1 after brightness
    out = dali.jitter_batch(x.clone(), order, factors)
    expected = reference_jitter(x, order, factors)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert (out - expected).abs().max() < 1e-5
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3             # every image changed


def test_jitter_batch_identity_draws_leave_the_image():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    hue_only = torch.full((4, 4), 3)
    drawn = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
    assert torch.equal(dali.jitter_batch(x, hue_only, 0.6 + 0.8 * torch.rand(4, 3)), x)
    assert torch.equal(dali.jitter_batch(x, drawn, torch.ones(4, 3)), x)


def test_batch_end_reads_no_value_on_the_host():
    """On "meta" tensors (shapes, no values) every op that would wait for the GPU to read a value
    (``.item()``, a Python ``if`` on a tensor, boolean-mask indexing) raises; the batch's end runs."""
    meta = torch.device("meta")
    images = torch.empty(4, 8, 8, 3, dtype=torch.uint8, device=meta)
    lighting, jitter = torch.empty(4, 3, device=meta), torch.empty(4, 7, device=meta)
    out = dali.finish_batch(images, lighting, jitter, pl.OnDevice(meta, channels_last=True))
    assert out.shape == (4, 3, 8, 8) and out.device == meta
    with pytest.raises((RuntimeError, NotImplementedError)):     # what the check relies on
        out[out > 0]


def u8_batch(n: int = 3, size: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g), 0.1 * torch.randn(n, 3, generator=g)


@pytest.mark.parametrize("channels_last", [False, True])
def test_finish_batch_without_jitter_is_on_device(channels_last):
    images, lighting = u8_batch()
    jitter = torch.cat([torch.tensor([[0, 1, 2, 3], [2, 3, 1, 0], [3, 0, 2, 1]]).float(), torch.ones(3, 3)], dim=1)
    on_device = pl.OnDevice(torch.device("cpu"), channels_last=channels_last)
    out = dali.finish_batch(images, lighting, jitter, on_device)
    expected = on_device(images, lighting)
    assert out.shape == expected.shape == (3, 3, 10, 10)
    assert (out - expected).abs().max() <= 1e-6
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_finish_batch_jitters_before_the_lighting():
    images, lighting = u8_batch()
    order, factors = torch.tensor([[1, 0, 3, 2], [2, 1, 0, 3], [0, 2, 3, 1]]), torch.tensor([[0.7, 1.3, 0.9]] * 3)
    out = dali.finish_batch(images, lighting, torch.cat([order.float(), factors], dim=1), pl.OnDevice(torch.device("cpu")))
    x = reference_jitter(images.permute(0, 3, 1, 2).float() / 255, order, factors) + lighting.view(-1, 3, 1, 1)
    expected = (x - torch.tensor(pl.MEAN).view(1, 3, 1, 1)) / torch.tensor(pl.STD).view(1, 3, 1, 1)
    assert (out - expected).abs().max() < 1e-4      # 1e-5 before the division by std (about 0.22)


# ---------------------------------------------------------------------------------------------
# The draws fed to DALI, without DALI


def test_crop_draws_are_uniform_in_area_and_log_aspect():
    """5000 crop boxes of :func:`pretrain.pipeline.draw` (torchvision's ``RandomResizedCrop``,
    which the DALI path feeds as they are) on a 2000 x 2000 image.

    ``RandomResizedCrop`` proposes an area fraction from U(0.08, 1) and a log aspect from
    U(log 3/4, log 4/3) and rejects a box wider or taller than the image, which on a square
    image means area * aspect > 1 or area / aspect > 1, whatever the image's size: about 14% of
    the proposals, all with an area above 3/4. So the accepted areas are *not* U(0.08, 1) (the
    test says so, to show it has the power to see it), and the accepted aspects are not uniform
    either. Where area <= 3/4 no proposal is ever rejected, so the accepted draws restricted there
    are the proposals restricted there: area U(0.08, 0.75), independent of a log aspect
    U(log 3/4, log 4/3). That is what is tested (the fixed seeds make the p-values fixed too).
    Areas and aspects are those of the rounded boxes, off the drawn ones by 0.2% at most."""
    size, n = 2000, 5000
    area, log_aspect = np.empty(n), np.empty(n)
    with torch.random.fork_rng(devices=[]):
        for i in range(n):
            torch.default_generator.manual_seed(sample_seed(7, 0, i))
            _, _, h, w = pl.draw(size, size).box
            area[i], log_aspect[i] = w * h / size**2, math.log(w / h)
    assert 0.08 * 0.99 < area.min() and area.max() <= 1
    a = math.log(4 / 3)
    assert stats.kstest(area, stats.uniform(0.08, 0.92).cdf).pvalue < 1e-6   # the rejections truncate the top
    kept = area <= 0.75
    assert kept.sum() > 0.8 * n
    assert stats.kstest(area[kept], stats.uniform(0.08, 0.67).cdf).pvalue > 0.01
    assert stats.kstest(log_aspect[kept], stats.uniform(-a, 2 * a).cdf).pvalue > 0.01


SIZES = [(200, 150), (150, 210), (330, 250), (96, 128), (520, 300), (64, 64), (250, 330), (180, 180)]


def write_images(root, sizes=SIZES) -> list[tuple[str, int]]:
    """Smooth JPEGs (gradients and soft discs, as photos are smooth at the scale of a pixel),
    one in grayscale and one PNG named .jpg, as ImageNet holds; labels 10, 11, ..."""
    samples = []
    for i, (w, h) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        disc = np.exp(-((xx - w * (0.3 + 0.05 * i)) ** 2 + (yy - h * 0.6) ** 2) / (0.05 * w * h))
        rgb = np.stack([255 * xx / w, 255 * yy / h, 128 + 100 * np.sin(xx / 9 + yy / 13)], axis=-1)
        rgb = (0.6 * rgb + 100 * disc[..., None] * np.array([1.0, -0.5, 0.3])).clip(0, 255).astype(np.uint8)
        img, path = Image.fromarray(rgb), root / f"img{i}.jpg"
        if i == 3:
            img.convert("L").save(path, quality=95)
        elif i == 5:
            img.save(path, format="PNG")
        else:
            img.save(path, quality=95)
        samples.append((str(path), 10 + i))
    return samples


def cpu_path(samples, key, size, monkeypatch, dct: bool = True) -> tuple[torch.Tensor, int, torch.Tensor, pl.Draws]:
    """The CPU path's sample ``key`` without its colour jitter (and, ``dct=False``, without its
    DCT-domain scaling, decoding the full image as DALI does), and its draws."""
    drawn = []
    original = pl.draw
    with monkeypatch.context() as m:
        m.setattr(pl, "draw", lambda w, h: drawn.append(original(w, h)) or drawn[-1])
        m.setattr(pl, "jitter", lambda img, order, factors: img)
        if not dct:
            m.setattr(pl.dec, "dct_factor", lambda region, out: 1)
        image, label, lighting = pl.Samples(samples, pl.PaperTransform(size), seed=5)[key]
    return image, label, lighting, drawn[0]


def test_feed_holds_the_cpu_paths_draws(tmp_path, monkeypatch):
    samples = write_images(tmp_path)
    keys = [(3, 6), (3, 0), (4, 2), (0, 5)]
    before = torch.get_rng_state()
    feed = dali.prepare(samples, keys, seed=5)
    assert torch.equal(torch.get_rng_state(), before)                   # the process's stream goes on untouched
    for k, key in enumerate(keys):
        _, label, lighting, d = cpu_path(samples, key, 48, monkeypatch)
        assert feed.boxes()[k] == d.box and feed.flip[k] == d.flip and feed.labels[k] == label
        assert feed.jitter[k].tolist() == pytest.approx([*d.order, *d.factors], abs=0, rel=1e-7)
        assert torch.equal(torch.from_numpy(feed.lighting[k]), lighting)
        assert bytes(feed.data[k]) == open(samples[key[1]][0], "rb").read()


def test_unreadable_file_is_a_dataset_error_naming_it(tmp_path):
    samples = write_images(tmp_path, SIZES[:2])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    for path in (tmp_path / "bad.jpg", tmp_path / "missing.jpg"):
        with pytest.raises(DatasetError, match=str(path)):
            dali.prepare([*samples, (str(path), 0)], [(0, 0), (0, 2)], seed=0)


def sampler_of(samples, seed: int = 3) -> pl.EpochIndices:
    return pl.EpochIndices(DistributedSampler(samples, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=True))


def test_loader_needs_no_dali_until_iterated(tmp_path):
    samples = write_images(tmp_path)
    sampler = sampler_of(samples)
    loader = dali.DaliTrainLoader(samples, sampler, 3, 32, seed=0, device_id=None, threads=1, decoder_device="cpu")
    assert len(loader) == 2
    loader.set_epoch(4)
    assert sampler.epoch == 4 and sampler.sampler.epoch == 4
    with pytest.raises(ValueError, match="device_id"):
        dali.DaliTrainLoader(samples, sampler, 3, 32, seed=0, device_id=None, threads=1)
    with pytest.raises(ValueError, match="decoder_device"):
        dali.DaliTrainLoader(samples, sampler, 3, 32, seed=0, device_id=0, threads=1, decoder_device="gpu")


def test_dali_missing_names_the_fix(monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "nvidia.dali", None)                     # import nvidia.dali fails
        reason = dali.dali_missing()
    assert "pip install 'trickbench[dali]'" in reason and "nvidia-dali-cuda130" in reason and "\n" not in reason
    if dali.dali_missing(gpu=False) is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert "needs a CUDA GPU" in dali.dali_missing()


# ---------------------------------------------------------------------------------------------
# The loader, with DALI


def check_against_cpu_path(loader, samples, monkeypatch, epochs=(0, 1)) -> dict:
    """Runs ``epochs`` of ``loader`` and checks each batch against the CPU path; returns the
    epochs' batches and the pixel differences (levels of 255) to the CPU path's images before
    jitter (``cpu``) and to those decoded at full size, not DCT-scaled (``full``)."""
    fed = []
    original = dali.prepare
    monkeypatch.setattr(dali, "prepare", lambda *a, **k: fed.append(original(*a, **k)) or fed[-1])
    size, b = loader.image_size, loader.batch_size
    diffs, full, batches = [], [], {}
    for epoch in epochs:
        loader.set_epoch(epoch)
        order = list(loader.sampler.sampler)
        batches[epoch] = list(loader)
        assert len(batches[epoch]) == len(loader) == len(samples) // b
        for j, (images, labels, lighting, jitter) in enumerate(batches[epoch]):
            assert images.shape == (b, size, size, 3) and images.dtype == torch.uint8
            assert images.device == loader.device == labels.device == lighting.device == jitter.device
            assert labels.dtype == torch.int64 and lighting.dtype == jitter.dtype == torch.float32
            assert lighting.shape == (b, 3) and jitter.shape == (b, 7)
            keys = [(epoch, i) for i in order[j * b:(j + 1) * b]]
            assert labels.tolist() == [samples[i][1] for _, i in keys]           # the sampler's order
            feed = next(f for f in fed if f.paths == [samples[i][0] for _, i in keys])
            for k, key in enumerate(keys):
                expected, label, light, d = cpu_path(samples, key, size, monkeypatch)
                assert feed.boxes()[k] == d.box and bool(feed.flip[k]) == d.flip   # the CPU path's windows
                assert torch.equal(lighting[k].cpu(), light)
                assert jitter[k].tolist() == pytest.approx([*d.order, *d.factors], abs=0, rel=1e-7)
                diffs.append((images[k].cpu().float() - expected.float()).abs())
                full.append((images[k].cpu().float() - cpu_path(samples, key, size, monkeypatch, dct=False)[0]).abs())
    summary = lambda d: (d.mean().item(), d.flatten().quantile(0.99).item(), d.max().item())  # noqa: E731
    return {"cpu": summary(torch.stack(diffs)), "full": summary(torch.stack(full)), "batches": batches}


def test_cpu_only_dali_loader_is_the_cpu_path(tmp_path, monkeypatch):
    """DALI on the CPU (libjpeg-turbo, DALI's resize) against the CPU path before its jitter:
    the same windows, flips, lighting and jitter draws, epochs and order, and pixels within a few
    levels. Measured with DALI 2.4.0 on these images, in levels of 255 (mean, 99th percentile,
    max): 0.71, 9, 26 against the CPU path; 0.14, 1, 3 against the CPU path decoding at full size.
    The bulk is the CPU path's DCT-domain scaling of crops of twice the output or more (a coarser
    prefilter, and a window rounded to the scaled pixels), not DALI's resize: DALI decodes the
    window at full size. Photos, with more fine detail than these images, differ more."""
    need_dali(gpu=False)
    samples = write_images(tmp_path)
    loader = dali.DaliTrainLoader(samples, sampler_of(samples), 3, 48, seed=5, device_id=None, threads=2,
                                  decoder_device="cpu")
    result = check_against_cpu_path(loader, samples, monkeypatch)
    print("DALI (cpu) vs the CPU path, levels of 255 (mean, p99, max): %.2f %.0f %.0f; decoded at full size: "
          "%.2f %.0f %.0f" % (*result["cpu"], *result["full"]))
    assert result["cpu"][0] < 1.5 and result["cpu"][1] < 15 and result["cpu"][2] < 40
    assert result["full"][0] < 0.3 and result["full"][1] <= 2 and result["full"][2] <= 5
    (first, *_), (second, *_) = result["batches"][0], result["batches"][1]
    assert not torch.equal(first[0], second[0])                        # two epochs differ
    # Half a pass, then a whole one: the first's prefetched batches are dropped, not handed over.
    loader.set_epoch(0)
    next(iter(loader))
    again = list(loader)
    assert all(torch.equal(a, b) for batch, old in zip(again, result["batches"][0]) for a, b in zip(batch, old))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cpu_only_dali_loader_names_a_file_it_cannot_read(tmp_path, damage):
    """A truncated JPEG's header reads and DALI fails to decode it; a garbage file fails in the
    header, before DALI. Both are the suite's DatasetError naming the file, also on a second pass."""
    need_dali(gpu=False)
    samples = write_images(tmp_path, SIZES[:4])
    data = open(samples[1][0], "rb").read()
    bad = tmp_path / f"{damage}.jpg"
    bad.write_bytes(data[:len(data) // 3] if damage == "truncated" else b"\xff\xd8 garbage")
    samples[1] = (str(bad), samples[1][1])
    loader = dali.DaliTrainLoader(samples, pl.EpochIndices(range(4)), 4, 32, seed=0, device_id=None, threads=1,
                                  decoder_device="cpu")
    for _ in range(2):
        with pytest.raises(DatasetError, match=f"unreadable image {bad}"):
            list(loader)


def test_gpu_dali_loader_is_the_cpu_path(tmp_path, monkeypatch):
    """nvJPEG (``decoder_device="mixed"``) against the CPU path, as above; and the batch's end
    runs on the GPU without a host sync."""
    need_dali(gpu=True)
    samples = write_images(tmp_path)
    loader = dali.DaliTrainLoader(samples, sampler_of(samples), 3, 48, seed=5, device_id=0, threads=2)
    result = check_against_cpu_path(loader, samples, monkeypatch)
    print("DALI (mixed) vs the CPU path, levels of 255 (mean, p99, max): %.2f %.0f %.0f; decoded at full size: "
          "%.2f %.0f %.0f" % (*result["cpu"], *result["full"]))
    # Not yet measured on a GPU: nvJPEG's IDCT and upsampling are not libjpeg-turbo's, so looser.
    assert result["cpu"][0] < 2 and result["cpu"][1] < 20 and result["cpu"][2] < 60
    assert result["full"][0] < 1 and result["full"][1] <= 6 and result["full"][2] <= 20
    images, _, lighting, jitter = result["batches"][0][0]
    assert images.is_cuda
    on_device = pl.OnDevice(images.device, channels_last=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = dali.finish_batch(images, lighting, jitter, on_device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = dali.finish_batch(images.cpu(), lighting.cpu(), jitter.cpu(), pl.OnDevice(torch.device("cpu")))
    assert (out.cpu() - expected).abs().max() < 1e-4
