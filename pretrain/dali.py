"""The GPU input pipeline of pretraining (``data.backend="dali"``): NVIDIA DALI decodes, crops,
resizes and flips the training images on the GPU, with every random draw of the CPU pipeline
(:mod:`pretrain.pipeline`, ``data.backend="cpu"``), so a sample's crop box, flip, jitter and
lighting are the same on both backends, in any process, and in a resumed run.

What happens per batch, and why:

* **the order** is the suite's own: the process's :class:`~pretrain.pipeline.EpochIndices` over
  its ``DistributedSampler`` shard, handed to DALI batch by batch through ``fn.external_source``
  (a callable that takes the batch's number in the epoch), not DALI's file reader and its
  shuffling, so the epochs and the shards are the CPU path's;
* **the draws** are the CPU path's, made in the training process: each sample seeds torch's CPU
  generator with ``sample_seed(seed, epoch, index)`` and calls :func:`pretrain.pipeline.draw` on
  the size in the file's header, which draws the crop box, the flip, the jitter order and factors
  and the lighting offset with torchvision's own functions, in the reference's order
  (:func:`prepare`). DALI is fed the encoded bytes, the crop window in pixels and the flip. This
  is why the crop is ``fn.decoders.image_slice`` with a window fed in, and not
  ``fn.decoders.image_random_crop``: DALI's random crop draws from DALI's own generator (its own
  seeds and its own sampling of area and aspect), which would break the suite's per-sample seeding
  and give crop boxes that no CPU run gives. A window fed in gives the CPU path's exact boxes,
  and nvJPEG still decodes only that window (ROI decoding), which is what made the random crop
  cheap;
* **on the GPU** (``decoder_device="mixed"``): nvJPEG decodes the window (without the EXIF
  rotation and with libjpeg-turbo's "fancy" chroma upsampling, as the CPU path decodes: the
  header's size is the stored one), ``fn.resize`` makes it S x S with an antialiased linear
  filter and ``fn.flip`` flips it; the ``uint8`` (N, S, S, 3) batch stays on the GPU. DALI's
  resize is not torch's kernel and nvJPEG does not scale in the DCT domain, so pixels differ from
  the CPU path's by a few levels (``tests/test_dali.py`` measures it); the boxes never differ;
* **colour jitter** runs on the float batch on the GPU (:func:`jitter_batch`: torchvision's tensor
  formulas, vectorised over the batch, with no host sync), from the drawn order and factors that
  the loader hands over beside the images, followed by the lighting and the normalisation of
  :class:`~pretrain.pipeline.OnDevice` (:func:`finish_batch`). The CPU path jitters ``uint8``
  pixels with PIL in its workers; the two agree to PIL's rounding.

The Python work per sample (the header, the draws: about 0.1 ms, most of it in torchvision's
``get_params``) runs in the training process when DALI asks for a batch, which its prefetch queue
does two batches ahead; the file reads run in a thread pool, one batch ahead of that.

DALI is an optional dependency (``pip install 'trickbench[dali]'``, the ``nvidia-dali-cuda130``
wheel): it is imported inside the functions that use it, so this module imports without it.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from . import decode as dec
from .data import DatasetError, sample_seed
from .pipeline import EpochIndices, OnDevice, draw

INSTALL = "pip install 'trickbench[dali]'"   # the nvidia-dali-cuda130 wheel (CUDA 13 builds of torch)
DECODERS = ("mixed", "cpu")                  # nvJPEG on the GPU; libjpeg-turbo on the CPU (tests)


def dali_missing(gpu: bool = True) -> str | None:
    """Why ``data.backend="dali"`` cannot run here, in one line that names the fix; None when it
    can. With ``gpu=False``, only whether DALI imports (a CPU-only pipeline, as in the tests)."""
    try:
        import nvidia.dali  # noqa: F401
    except (ImportError, OSError) as e:   # OSError: a wheel whose CUDA libraries do not load
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        return (f"data.backend='dali' needs NVIDIA DALI, which does not import ({reason}): {INSTALL} "
                f"(the nvidia-dali-cuda130 wheel), or set data.backend='cpu'")
    if gpu and not torch.cuda.is_available():
        return "data.backend='dali' needs a CUDA GPU and torch sees none: run on a GPU node, or set data.backend='cpu'"
    return None


# ---------------------------------------------------------------------------------------------
# What the training process hands DALI for a batch: the CPU path's draws


@dataclass
class Feed:
    """One batch's inputs to DALI (the encoded files, the crop windows, the flips) and what the
    loader hands over beside DALI's images (the labels, the lighting offsets, the jitter draws)."""
    paths: list[str]
    data: list[np.ndarray]      # each file's bytes, uint8 (length,)
    anchor: np.ndarray          # int32 (N, 2): left, top of the crop window in pixels (DALI's "WH" order)
    shape: np.ndarray           # int32 (N, 2): width, height of the window
    flip: np.ndarray            # int32 (N,): 1 flips horizontally
    labels: np.ndarray          # int64 (N,)
    lighting: np.ndarray        # float32 (N, 3): the PCA lighting offset
    jitter: np.ndarray          # float32 (N, 7): the order of the 4 ops (0 brightness, 1 contrast,
    #                                             2 saturation, 3 hue: none) and the 3 factors

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """The windows as ``pipeline.Draws.box``: (top, left, height, width)."""
        return [(int(t), int(le), int(h), int(w)) for (le, t), (w, h) in zip(self.anchor, self.shape)]


def read(path: str) -> tuple[bytes, dec.Header]:
    """A file's bytes and header, or a :class:`DatasetError` that names the file and the fix."""
    try:
        data = dec.read_bytes(path)
        return data, dec.read_header(path, data)
    except dec.DecodeError as e:
        raise DatasetError(str(e)) from None


def prepare(samples: Sequence[tuple[str, int]], keys: Sequence[tuple[int, int]], seed: int,
            files: Sequence[tuple[bytes, dec.Header]] | None = None) -> Feed:
    """The batch of the ``(epoch, index)`` pairs ``keys``: each sample's draws are those of the
    CPU path (:class:`pretrain.pipeline.Samples` with :class:`~pretrain.pipeline.PaperTransform`),
    from torch's CPU generator seeded with ``sample_seed(seed, epoch, index)``. ``files`` are the
    samples' :func:`read` results when already read. Torch's own stream goes on untouched."""
    paths = [samples[index][0] for _, index in keys]
    if files is None:
        files = [read(path) for path in paths]
    n = len(keys)
    feed = Feed(paths, [np.frombuffer(data, np.uint8) for data, _ in files], np.empty((n, 2), np.int32),
                np.empty((n, 2), np.int32), np.empty(n, np.int32),
                np.array([samples[index][1] for _, index in keys], np.int64),
                np.empty((n, 3), np.float32), np.empty((n, 7), np.float32))
    # One fork for the batch: seeding the CPU generator alone costs 1 us, fork_rng's copy of its state 10.
    with torch.random.fork_rng(devices=[]):
        for k, ((epoch, index), (_, header)) in enumerate(zip(keys, files)):
            torch.default_generator.manual_seed(sample_seed(seed, epoch, index))
            d = draw(header.width, header.height)
            top, left, h, w = d.box
            feed.anchor[k], feed.shape[k], feed.flip[k] = (left, top), (w, h), d.flip
            feed.lighting[k] = d.lighting.numpy()
            feed.jitter[k] = (*d.order, *d.factors)
    return feed


# ---------------------------------------------------------------------------------------------
# The loader


class DaliTrainLoader:
    """The training batches of one process, decoded by DALI: ``(images, labels, lighting,
    jitter)`` with ``images`` uint8 (N, S, S, 3) on the GPU (on the CPU when ``device_id`` is
    None), ``labels`` int64 (N,), ``lighting`` float32 (N, 3) and ``jitter`` float32 (N, 7), all on
    the images' device; :func:`finish_batch` makes the network's input of them. ``len()`` counts
    full batches only (the last, partial one is dropped, as the CPU path's ``drop_last``).

    ``sampler`` gives the order (and ``set_epoch`` passes through to it); ``threads`` is DALI's
    number of CPU threads and the file readers'. ``decoder_device="cpu"`` decodes with
    libjpeg-turbo on the CPU (then resizes on the GPU, or on the CPU when ``device_id`` is None).
    One pass at a time: a new ``iter()`` ends the pass before it, even half read."""

    def __init__(self, samples: Sequence[tuple[str, int]], sampler: EpochIndices, batch_size: int, image_size: int,
                 seed: int, device_id: int | None, threads: int, decoder_device: str = "mixed"):
        if decoder_device not in DECODERS:
            raise ValueError(f"decoder_device={decoder_device!r}: expected one of {DECODERS}")
        if decoder_device == "mixed" and device_id is None:
            raise ValueError("decoder_device='mixed' decodes on a GPU: give a device_id, or decoder_device='cpu'")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected at least 1")
        self.samples, self.sampler, self.seed = samples, sampler, seed
        self.batch_size, self.image_size, self.threads = batch_size, image_size, max(1, threads)
        self.device_id, self.decoder_device = device_id, decoder_device
        self.device = torch.device("cpu") if device_id is None else torch.device("cuda", device_id)
        self._pipe = None
        self._pool: ThreadPoolExecutor | None = None
        self._batches: list[list[tuple[int, int]]] = []     # the pass's (epoch, index) pairs, batch by batch
        self._feeds: dict[int, Feed] = {}                   # the batches DALI was fed and not yet handed over
        self._reads: dict[int, list[Future]] = {}           # file reads under way, by batch
        self._stop = False                                  # the source ends the pass at the next batch asked for
        self._open = False                                  # DALI may still hold batches of a pass not read to its end

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self._open:
            self._end_pass(self._pipe)
        pipe = self._pipeline()
        keys = list(self.sampler)     # (epoch, index) pairs of the sampler's current epoch
        b = self.batch_size
        self._batches = [keys[i * b:(i + 1) * b] for i in range(len(keys) // b)]
        self._open, self._stop = True, False
        return self._pass(pipe)

    def _pass(self, pipe) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        for j in range(len(self._batches)):
            images = self._run(pipe, j)
            feed = self._feeds.pop(j)
            yield images, self._to_device(feed.labels), self._to_device(feed.lighting), self._to_device(feed.jitter)
        self._end_pass(pipe)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A small array on the loader's device, copied from pinned memory without waiting for
        the GPU (a copy from pageable memory would wait for the stream's queued work)."""
        tensor = torch.from_numpy(array)
        if self.device.type == "cpu":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def _end_pass(self, pipe) -> None:
        """Empty DALI's queue and rewind its source: after a pass read to its end, the source has
        already said StopIteration; after one left early, it says so now, and the (at most
        prefetch-depth) batches DALI holds are thrown away; if one of those fails, so is the
        pipeline (the next pass builds another, and meets the file again in its turn)."""
        self._stop = True
        try:
            while True:
                pipe.run()
        except StopIteration:
            pipe.reset()
        except Exception:   # noqa: BLE001 - a batch no one will read: its error is not this pass's
            self._pipe = None
        self._feeds.clear()
        self._reads.clear()
        self._open = False

    # DALI's side ----------------------------------------------------------------------------

    def _source(self, i: int):
        """``external_source``'s callback: batch ``i`` of the pass (DALI counts from 0 after each
        ``reset``), as (bytes, anchors, shapes, flips); StopIteration ends the pass."""
        if self._stop or i >= len(self._batches):
            raise StopIteration
        files = [f.result() for f in (self._reads.pop(i, None) or self._read(i))]
        if i + 1 < len(self._batches) and i + 1 not in self._reads:
            self._reads[i + 1] = self._read(i + 1)
        feed = prepare(self.samples, self._batches[i], self.seed, files)
        self._feeds[i] = feed
        return feed.data, feed.anchor, feed.shape, feed.flip

    def _read(self, i: int) -> list[Future]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dali-read")
        return [self._pool.submit(read, self.samples[index][0]) for _, index in self._batches[i]]

    def _pipeline(self):
        if self._pipe is not None:
            return self._pipe
        from nvidia.dali import fn, types
        from nvidia.dali.pipeline import Pipeline

        pipe = Pipeline(batch_size=self.batch_size, num_threads=self.threads, device_id=self.device_id,
                        prefetch_queue_depth=2)
        with pipe:
            data, anchor, shape, flip = fn.external_source(
                source=self._source, num_outputs=4, batch=True, ndim=[1, 1, 1, 0],
                dtype=[types.UINT8, types.INT32, types.INT32, types.INT32])
            # Integer anchors and shapes are absolute pixels, in "WH" order (x, y).
            images = fn.decoders.image_slice(data, anchor, shape, device=self.decoder_device, output_type=types.RGB,
                                             adjust_orientation=False, jpeg_fancy_upsampling=True)
            if self.decoder_device == "cpu" and self.device_id is not None:
                images = images.gpu()
            images = fn.resize(images, size=[self.image_size, self.image_size], interp_type=types.INTERP_LINEAR,
                               antialias=True)
            images = fn.flip(images, horizontal=flip)
            pipe.set_outputs(images)
        pipe.build()
        self._pipe = pipe
        return pipe

    def _run(self, pipe, j: int) -> torch.Tensor:
        """Batch ``j``'s images from DALI, as a torch tensor on the loader's device."""
        try:
            (images,) = pipe.run()
        except DatasetError:                    # raised by the source (a file that cannot be read)
            self._pipe, self._open = None, False    # DALI's pipeline is no longer valid after an error
            raise
        except RuntimeError as e:
            self._pipe, self._open = None, False
            if "image_slice" not in str(e):
                raise
            raise self._decode_error(j, str(e)) from None
        return self._to_torch(pipe, images)

    def _to_torch(self, pipe, images) -> torch.Tensor:
        """As DALI's own PyTorch iterator does: a view of DALI's buffer with the dynamic executor
        (it keeps it alive and orders the streams), else a copy on torch's current stream."""
        from nvidia.dali.plugin.pytorch import feed_ndarray

        tensor = images.as_tensor()
        if getattr(pipe, "exec_dynamic", False):
            if self.device.type == "cuda":
                with torch.cuda.device(self.device):
                    return torch.from_dlpack(tensor)
            return torch.from_dlpack(tensor)
        out = torch.empty(tensor.shape(), dtype=torch.uint8, device=self.device)
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        return feed_ndarray(tensor, out, cuda_stream=stream)

    def _decode_error(self, j: int, text: str) -> DatasetError:
        """DALI's decoding error as the suite's: the file it names by its place in the batch."""
        reason = text.split("encountered:", 1)[-1].replace("Current pipeline object is no longer valid.", "")
        reason = " ".join(reason.split()).rstrip(" :.") or "no reason given"
        feed = self._feeds.get(j)
        sample = re.search(r"sample #(\d+)", text)
        if feed is not None and sample is not None and int(sample.group(1)) < len(feed.paths):
            path = feed.paths[int(sample.group(1))]
            return DatasetError(str(dec.unreadable(path, RuntimeError(f"DALI could not decode it: {reason}"))))
        paths = ", ".join(feed.paths) if feed is not None else "(unknown)"
        return DatasetError(f"DALI could not decode an image of this batch ({reason}): {paths}. Find it with "
                            f"data.backend='cpu', which names the file, then replace it with a good copy or delete it.")


# ---------------------------------------------------------------------------------------------
# The batch's end, on the training device


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` (ITU-R 601-2 luma) of (N, 3, H, W) floats: (N, 1, H, W)."""
    r, g, b = x.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def jitter_batch(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's ``ColorJitter`` on a float (N, 3, H, W) batch in [0, 1], each image with its
    own draws: ``order`` (N, 4) the ops in the order applied (0 brightness, 1 contrast,
    2 saturation, 3 hue: not drawn, so none), ``factors`` (N, 3) brightness, contrast, saturation.

    Every op is torchvision's blend ``(f * img + (1 - f) * other).clamp(0, 1)``, with ``other``
    0 (brightness), the mean of the image's grayscale (contrast) or the grayscale (saturation),
    and hue's ``f`` 1. So each of the 4 steps is one blend for the whole batch, with each image's
    own ``f`` and ``other`` picked by gathering and ``torch.where``: no host sync (no ``.item()``,
    no boolean indexing, no Python branch on a value), so it queues on the GPU behind the batch."""
    n = x.shape[0]
    order = order.to(device=x.device, dtype=torch.long)
    factors = factors.to(device=x.device, dtype=x.dtype)
    table = torch.cat([factors, torch.ones_like(factors[:, :1])], dim=1)   # (N, 4): the factor of op 0..3
    for k in range(order.shape[1]):
        op = order[:, k:k + 1]
        f = table.gather(1, op).view(n, 1, 1, 1)
        op = op.view(n, 1, 1, 1)
        gray = _grayscale(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        other = torch.where(op == 2, gray, torch.where(op == 1, mean, 0.0))
        x = x.mul(f).add_(other.mul(1 - f)).clamp_(0, 1)
    return x


def finish_batch(images: torch.Tensor, lighting: torch.Tensor, jitter: torch.Tensor, on_device: OnDevice) -> torch.Tensor:
    """The network's input of a DALI batch, on the images' device: ``uint8`` (N, H, W, 3) to
    floats in [0, 1], the colour jitter (:func:`jitter_batch` with ``jitter``'s order and
    factors, (N, 7)), then :class:`~pretrain.pipeline.OnDevice`'s lighting offset and
    normalisation, in the reference's order; in ``on_device``'s memory format."""
    x = images.permute(0, 3, 1, 2).float().div_(255)
    if jitter.numel():
        x = jitter_batch(x, jitter[:, :4], jitter[:, 4:])
    if lighting.numel():
        x = x.add_(lighting.view(-1, 3, 1, 1))
    x = x.sub_(on_device.mean).div_(on_device.std)
    return x.contiguous(memory_format=on_device.format)
