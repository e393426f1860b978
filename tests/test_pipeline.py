"""The pretraining input pipeline (``data.backend="cpu"``, pretrain/pipeline.py) against the
reference (torchvision ``ImageFolder`` + PIL, pretrain/data.py), and the training step without
per-step host syncs (pretrain/engine.py)."""
from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import transforms

from pretrain import data as ref
from pretrain import decode, pipeline
from pretrain.engine import NonFiniteLossError, train_one_epoch
from pretrain.models import resnet
from pretrain.objective import Objective


def photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour fields, edges and grain: something JPEG and the resize kernels treat like a photo."""
    small = rng.random((max(height // 16, 2), max(width // 16, 2), 3)) * 255
    img = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32)
    img[rng.integers(0, height): rng.integers(0, height) + height // 4, :] *= 0.6
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[str]:
    """JPEGs at ImageNet-like sizes (two large enough for DCT scaling), a CMYK JPEG, a grayscale
    JPEG and a PNG named ``.JPEG``, as ImageNet has."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    sizes = [(500, 375), (375, 500), (333, 500), (500, 400), (640, 480), (300, 225), (1600, 1200), (1200, 1600),
             (260, 190), (450, 350), (500, 500), (480, 360)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        img = Image.fromarray(photo(rng, h, w), "RGB")
        path = root / f"img{i}.JPEG"
        img.save(path, format="JPEG", quality=int(rng.integers(75, 96)))
        paths.append(str(path))
    for name, image, fmt in (("cmyk", Image.fromarray(photo(rng, 300, 400)).convert("CMYK"), "JPEG"),
                             ("gray", Image.fromarray(photo(rng, 300, 400)).convert("L"), "JPEG"),
                             ("png", Image.fromarray(photo(rng, 300, 400)), "PNG")):
        path = root / f"{name}.JPEG"
        image.save(path, format=fmt)
        paths.append(str(path))
    return paths


def reference_draws(monkeypatch, path: str, size: int, seed: int) -> dict:
    """The draws the reference transform makes on ``path`` (recorded from torchvision's own calls)."""
    seen: dict = {"flip": False}
    rrc, cj, hflip = (transforms.RandomResizedCrop.get_params, transforms.ColorJitter.get_params,
                      transforms.transforms.F.hflip)

    def record_rrc(img, scale, ratio):
        seen["box"] = rrc(img, scale, ratio)
        return seen["box"]

    def record_cj(*args):
        seen["jitter"] = cj(*args)
        return seen["jitter"]

    def record_flip(img):
        seen["flip"] = True
        return hflip(img)

    lighting = ref.Lighting.__call__

    def record_lighting(self, img):
        out = lighting(self, img)
        seen["lighting"] = (out - img)[:, 0, 0]
        return out

    with monkeypatch.context() as m:
        m.setattr(transforms.RandomResizedCrop, "get_params", staticmethod(record_rrc))
        m.setattr(transforms.ColorJitter, "get_params", staticmethod(record_cj))
        m.setattr(transforms.transforms.F, "hflip", record_flip)
        m.setattr(ref.Lighting, "__call__", record_lighting)
        torch.manual_seed(seed)
        ref.train_transform(size, "paper")(ref.load_rgb(path))
    return seen


def test_draws_are_the_reference_pipelines(files, monkeypatch):
    """Crop boxes, flips, jitter order and factors, lighting: the reference's, seed for seed."""
    flips = 0
    for seed in range(40):
        path = files[seed % len(files)]
        want = reference_draws(monkeypatch, path, 224, seed)
        with Image.open(path) as img:
            width, height = img.size
        torch.manual_seed(seed)
        got = pipeline.draw(width, height)
        assert got.box == tuple(want["box"]) and got.flip == want["flip"]
        order, b, c, s, _ = want["jitter"]
        assert got.order == order.tolist() and got.factors == (b, c, s)
        assert torch.allclose(got.lighting, want["lighting"], atol=1e-6)
        flips += got.flip
    assert 5 < flips < 35   # both sides of the flip are exercised


def _batches(files, size: int, seed: int, epoch: int):
    """The reference's and the new pipeline's normalised batches of ``files`` (and the DCT factor of each)."""
    reference = ref.SeededSamples([(ref.load_rgb(p), 0) for p in files], seed)
    reference.dataset = _Loaded(files, ref.train_transform(size, "paper"))
    reference.set_epoch(epoch)
    new = pipeline.Samples([(p, 0) for p in files], pipeline.PaperTransform(size), seed)
    a = torch.stack([reference[i][0] for i in range(len(files))])
    items = [new[(epoch, i)] for i in range(len(files))]
    b = pipeline.OnDevice(torch.device("cpu"))(torch.stack([x[0] for x in items]), torch.stack([x[2] for x in items]))
    return a, b


class _Loaded(torch.utils.data.Dataset):
    def __init__(self, files, transform):
        self.files, self.transform = files, transform

    def __getitem__(self, i):
        return self.transform(ref.load_rgb(self.files[i])), 0

    def __len__(self):
        return len(self.files)


def test_batches_match_the_reference_within_the_resize_kernels_difference(files):
    """Same draws, so the batches differ only where the two implementations do: torch's uint8
    antialiased bilinear resize against PIL's, and float rounding; the colour jitter is PIL's in
    both. Measured on these images (none large enough for DCT scaling: shorter sides under 448):
    mean |difference| 1e-4 on most images, up to 0.005 on small crops that are enlarged, at most
    6 levels of 255 (0.105 in the normalised image, where one level is 0.017); over 2,000
    ImageNet-like crops, 0.65% of values are more than a level off."""
    small = []
    for path in files:
        with Image.open(path) as img:
            if min(img.size) < 448:
                small.append(path)
    assert len(small) >= 10
    for seed, epoch in ((11, 0), (11, 3), (12, 1)):
        a, b = _batches(small, 224, seed=seed, epoch=epoch)
        assert a.shape == b.shape == (len(small), 3, 224, 224)
        diff = (a - b).abs()
        assert diff.mean() < 3e-3 and diff.max() < 0.125, (diff.mean(), diff.max())
    # not a vacuous match: another seed's draws are far away
    assert (_batches(small, 224, seed=13, epoch=0)[1] - b).abs().mean() > 0.2


def test_small_images_and_validation_are_the_references_to_the_bit(files, tmp_path):
    """augment='flip' (Fashion-MNIST) and the validation transform keep PIL's resize: the same
    pixels as the reference, JPEG or PNG, when no DCT scaling applies."""
    rng = np.random.default_rng(3)
    small = []
    for i, fmt in enumerate(("PNG", "JPEG", "PNG")):
        path = tmp_path / f"s{i}.{fmt.lower()}"
        Image.fromarray(photo(rng, 28, 28)).save(path, format=fmt)
        small.append(str(path))
    on_device = pipeline.OnDevice(torch.device("cpu"))
    for seed in range(6):
        flip_ref = ref.SeededSamples(_Loaded(small, ref.flip_transform(32)), seed)
        flip_new = pipeline.Samples([(p, 0) for p in small], pipeline.ReferenceResize(32, None, flip=True), seed)
        for i in range(len(small)):
            image, _, lighting = flip_new[(0, i)]
            assert torch.equal(on_device(image[None], lighting[None])[0], flip_ref[i][0])
    val_ref = _Loaded(files[:6], ref.val_transform(224, 256))
    val_new = pipeline.Samples([(p, 0) for p in files[:6]], pipeline.ReferenceResize(256, 224, flip=False))
    for i in range(6):
        image, _, lighting = val_new[i]
        assert torch.equal(on_device(image[None], lighting[None])[0], val_ref[i][0])


def test_dct_scaling_fires_only_for_large_crops_and_keeps_the_picture(files):
    """A crop at least twice the output on both sides is decoded at 1/2, 1/4 or 1/8 scale; the
    resized crop stays within 30 dB PSNR of the full decode's (measured: 38-45 dB here)."""
    assert decode.dct_factor((447, 900), (224, 224)) == 1
    assert decode.dct_factor((448, 900), (224, 224)) == 2
    assert decode.dct_factor((1800, 1800), (224, 224)) == 8
    big = files[6]
    data = decode.read_bytes(big)
    header = decode.read_header(big, data)
    full = decode.decode(big, data, header, 1)
    fired = 0
    for box in ((0, 0, 1200, 1600), (100, 200, 900, 1000), (300, 300, 500, 700)):
        factor = decode.dct_factor((box[3], box[2]), (224, 224))
        scaled = decode.decode(big, data, header, factor)
        assert scaled.shape[0] == math.ceil(header.height / factor)
        a = pipeline.resized_crop_u8(full, box, (header.width, header.height), 224).float()
        b = pipeline.resized_crop_u8(scaled, box, (header.width, header.height), 224).float()
        psnr = 10 * math.log10(255 ** 2 / max(((a - b) ** 2).mean().item(), 1e-12))
        assert psnr > 30, (box, factor, psnr)
        fired += factor > 1
    assert fired == 3


def test_decoders_agree_and_name_a_bad_file(files, tmp_path):
    """libjpeg-turbo through simplejpeg gives PIL's pixels; CMYK, grayscale and PNG go through PIL;
    a damaged file is a DecodeError that names it."""
    for path in files:
        data = decode.read_bytes(path)
        header = decode.read_header(path, data)
        assert np.array_equal(decode.decode(path, data, header), np.asarray(ref.load_rgb(path)))
    assert [decode.read_header(p, decode.read_bytes(p)).turbo for p in files[-3:]] == [False, True, False]
    bad = tmp_path / "bad.JPEG"
    bad.write_bytes(decode.read_bytes(files[0])[:300])
    with pytest.raises(decode.DecodeError, match=str(bad)):
        pipeline.PaperTransform(224)(str(bad))
    junk = tmp_path / "junk.JPEG"
    junk.write_bytes(b"not an image")
    with pytest.raises(decode.DecodeError, match="junk.JPEG"):
        pipeline.PaperTransform(224)(str(junk))


def _epochs(files, workers: int, epochs: int = 2):
    ds = pipeline.Samples([(p, i % 3) for i, p in enumerate(files)], pipeline.PaperTransform(64), seed=5)
    sampler = pipeline.EpochIndices(DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5))
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                        drop_last=True)
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        out.append([tuple(t.clone() for t in batch) for batch in loader])
    return out


def test_the_same_batches_for_any_number_of_workers_and_across_epochs(files):
    """Per-sample seeding: 0, 1 and 2 workers (kept alive between epochs) give the same batches;
    the second epoch differs from the first."""
    runs = [_epochs(files, w) for w in (0, 1, 2)]
    for other in runs[1:]:
        for epoch_a, epoch_b in zip(runs[0], other):
            for a, b in zip(epoch_a, epoch_b):
                assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(runs[0][0][0][0], runs[0][1][0][0])


class SyncCounter:
    """Counts the calls that make the host wait for a tensor's value."""
    NAMES = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu")

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(self_, *a, _name=name, _original=original, **k):
                self.calls.append(_name)
                return _original(self_, *a, **k)
            monkeypatch.setattr(torch.Tensor, name, counted)


def _tiny_run(batches, *, log_interval: int, model=None, monkeypatch=None, label_smoothing=0.1):
    torch.manual_seed(0)
    model = model or resnet(18, "B", num_classes=10, base_channels=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, fused=True)
    counter = SyncCounter(monkeypatch) if monkeypatch else None
    logs = []
    try:
        stats = train_one_epoch(model, batches, opt, Objective(10, label_smoothing=label_smoothing),
                                lr_at=lambda s: 0.05, first_step=100, device=torch.device("cpu"), precision="fp32",
                                scaler=None, generator=torch.Generator().manual_seed(0), use_mixup=False,
                                log_interval=log_interval, on_log=logs.append)
    finally:
        if monkeypatch:
            monkeypatch.undo()
    return model, stats, logs, counter


def test_training_reads_the_device_once_per_log_interval(monkeypatch):
    """12 iterations, a read every 4: at most 3 + 1 (the epoch's end) host reads of tensor values,
    where the loop before issue 22 read the loss every iteration."""
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(12)]
    _, stats, logs, counter = _tiny_run(batches, log_interval=4, monkeypatch=monkeypatch)
    reads = [c for c in counter.calls if c in SyncCounter.NAMES]
    assert 1 <= len(reads) <= 12 // 4 + 1, counter.calls
    assert [log["step"] for log in logs] == [104, 108, 112]
    assert math.isfinite(stats["train_loss"]) and stats["next_step"] == 112
    # the logged interval means average to the epoch's mean loss
    assert abs(sum(log["loss"] for log in logs) / 3 - stats["train_loss"]) < 1e-9


def test_a_non_finite_loss_never_reaches_the_weights_and_stops_at_the_next_read():
    """A NaN at the 4th iteration: the update is skipped on the device (the weights are those
    after 3 iterations), later updates too, and the error names the iteration at the next read."""
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(8)]
    poisoned = [(x.clone(), y) for x, y in batches]
    poisoned[3][0][0, 0, 0, 0] = float("nan")
    three, _, _, _ = _tiny_run(batches[:3], log_interval=100)
    torch.manual_seed(0)
    model = resnet(18, "B", num_classes=10, base_channels=8)
    with pytest.raises(NonFiniteLossError) as err:
        _tiny_run(poisoned, log_interval=100, model=model)
    assert err.value.step == 103 and "loss is nan at iteration 103" in str(err.value)
    for (name, a), b in zip(three.state_dict().items(), model.state_dict().values()):
        if a.dtype.is_floating_point and "running" not in name:   # BN statistics move in forward
            assert torch.equal(a, b), name


def _cxx() -> str | None:
    import os
    import shutil

    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def test_compile_trains_like_eager_and_saves_the_uncompiled_names(synthetic, tmp_path):
    """run.compile: what trains is torch.compile'd (inductor writes C++ on a CPU); the losses are
    eager's within float tolerance (measured: 1e-6 relative on the first steps, drifting to 1e-3 by
    the fourth), and the run's model, which checkpoints and backbone.pth are cut from, keeps its
    own parameter names where the compiled wrapper's carry an ``_orig_mod.`` prefix."""
    if _cxx() is None:
        pytest.skip("run.compile needs a C++ compiler on a CPU (inductor builds its kernels): install g++")
    from pretrain.run import setup
    from trickbench.pretrain_config import load_config

    from tests.test_pretrain_run import TINY

    cfg = load_config(TINY, {"data.root": str(synthetic["imagenet"]), "run.compile": True, "data.workers": 0})
    parts = setup(cfg, tmp_path / "compiled", device="cpu")
    assert type(parts.ddp_model).__name__ == "OptimizedModule" and parts.ddp_model._orig_mod is parts.model
    assert all(k.startswith("_orig_mod.") for k in parts.ddp_model.state_dict())
    assert list(parts.model.backbone_state_dict()) == list(resnet(18, "B", num_classes=10, base_channels=16).backbone_state_dict())

    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(3)]
    losses = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = resnet(18, "B", num_classes=10, base_channels=8)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, fused=True)
        logs: list[dict] = []
        train_one_epoch(torch.compile(model) if compiled else model, batches, opt, Objective(10), lr_at=lambda s: 0.01,
                        first_step=0, device=torch.device("cpu"), precision="fp32", scaler=None,
                        generator=torch.Generator(), use_mixup=False, log_interval=1, on_log=logs.append)
        losses.append([log["loss"] for log in logs])
    assert np.allclose(losses[0], losses[1], rtol=1e-3), losses


def test_draw_and_jitter_are_torchvisions_for_many_seeds_and_odd_sizes():
    """``draw`` re-makes torchvision's generator calls without their tensor bookkeeping, and
    ``jitter`` re-makes ``ImageEnhance`` on PIL's image cores: both are checked here against
    torchvision itself over many seeds, including images so narrow that ``RandomResizedCrop``
    falls back to its center crop, and every order of the three colour operations."""
    rng = np.random.default_rng(5)
    cj = transforms.ColorJitter(0.4, 0.4, 0.4)
    for seed in range(600):
        width, height = (int(rng.integers(20, 900)), int(rng.integers(20, 900))) if seed % 5 else (900, 40)
        torch.manual_seed(seed)
        box = transforms.RandomResizedCrop.get_params(torch.empty(3, height, width), [0.08, 1.0], [3 / 4, 4 / 3])
        flip = bool(torch.rand(1) < 0.5)
        order, b, c, s, _ = cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
        lighting = torch.randn(3) * 0.1
        after = torch.random.get_rng_state()
        torch.manual_seed(seed)
        got = pipeline.draw(width, height)
        assert (got.box, got.flip, got.order, got.factors) == (tuple(box), flip, order.tolist(), (b, c, s))
        assert torch.allclose(got.lighting, pipeline._EIGVEC @ (lighting * pipeline._EIGVAL))
        assert torch.equal(torch.random.get_rng_state(), after)     # the stream goes on as torchvision leaves it
    for seed in range(150):
        img = Image.fromarray(photo(rng, 40, 56))
        torch.manual_seed(seed)
        order, b, c, s, _ = cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
        torch.manual_seed(seed)
        want = cj(img)
        assert np.array_equal(np.asarray(pipeline.jitter(img, order.tolist(), (b, c, s))), np.asarray(want))


def test_dali_backend_without_dali_stops_with_what_to_install(synthetic, tmp_path):
    """``data.backend=dali`` on a machine without DALI or a GPU (CI): exit 2, one message that
    names the install command and the other backend, no traceback, no result."""
    from pretrain.dali import dali_missing
    from tests.conftest import run_cli
    from tests.test_pretrain_run import TINY, tiny_opts

    if dali_missing() is None:
        pytest.skip("DALI and a GPU are here: the backend runs (tests/test_dali.py)")
    work = tmp_path / "dali"
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--device", "cpu",
                   *tiny_opts(synthetic["imagenet"], "data.backend=dali"))
    assert proc.returncode == 2, proc.stderr
    assert "data.backend='dali'" in proc.stderr and "data.backend='cpu'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "result.json").exists()
