"""Exact resume for mmengine runs: the random state travels with each checkpoint.

mmengine's checkpoints hold the weights, the optimizer and the schedulers, but not
the random generators (torch, CUDA, numpy, Python) that the data pipeline
(flips, crops; in the main process when ``num_workers=0``) and the model
(proposal and RoI sampling) draw from. A killed and resumed run therefore went
on with other draws than an uninterrupted one. :class:`ResumeRandomState` saves
the state with every checkpoint of a single-process run and puts it back exactly
where the uninterrupted run had it:

* epoch-based loops: at the start of the first epoch after the resume;
* iteration-based loops: right before the first batch after the resume, that is
  after mmengine has replayed the data iterator to its position (which, with
  ``num_workers=0``, draws from the main process's generators).

Validation runs between a checkpoint and the next training step, so it must not
move the generators either: they are saved before it and put back after it (the
validation itself draws nothing that matters; its figures are unchanged).

With several processes (torchrun) mmengine writes checkpoints from rank 0 alone, so
the other ranks' states never reach the file; such a run resumes with each rank's
own streams, and says so in its log.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

KEY = "trickbench_random_state"


def random_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _RestoreBeforeBatch:
    """The loop's data iterator, which puts the saved state back before yielding batch ``at``
    (the batches before it are the replay of the resumed run's past)."""

    def __init__(self, iterator, at: int, state: dict):
        self.iterator, self.left, self.state = iterator, at, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.state is not None and self.left == 0:
            set_random_state(self.state)
            self.state = None
        self.left -= 1
        return next(self.iterator)

    def __getattr__(self, name):  # anything else mmengine asks of its iterator
        return getattr(self.iterator, name)


class ResumeRandomState(Hook):
    priority = "VERY_HIGH"

    def __init__(self):
        self.pending: dict | None = None
        self.around_val: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # mmengine saves on rank 0 only (this hook runs there alone), so only a single-process
        # run's state is saved: a collective here would wait for ranks that never come.
        if _world_size() == 1:
            checkpoint[KEY] = [random_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, "_resume", False):
            return  # load_from: weights of another run, not its place in the random streams
        states = checkpoint.get(KEY)
        world = _world_size()
        if world > 1:
            runner.logger.info("resumed with several processes: each keeps its own random streams, so the run "
                               "goes on with other random draws than an uninterrupted one (exact with one process)")
        elif not states:
            runner.logger.warning("the checkpoint holds no random state (written by several processes, or "
                                  "before it was saved): the resumed run draws other random numbers than an "
                                  "uninterrupted one would")
        else:
            self.pending = states[0]

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if self.pending is not None and isinstance(loop, IterBasedTrainLoop):  # after the replay
            loop.dataloader_iterator = _RestoreBeforeBatch(loop.dataloader_iterator, runner.iter, self.pending)
            self.pending = None

    def before_train_epoch(self, runner) -> None:
        if self.pending is not None:
            set_random_state(self.pending)
            self.pending = None

    def before_val(self, runner) -> None:
        self.around_val = random_state()

    def after_val(self, runner) -> None:
        if self.around_val is not None:
            set_random_state(self.around_val)
            self.around_val = None
