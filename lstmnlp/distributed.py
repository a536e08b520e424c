"""Data-parallel training across processes started by `torchrun` (gloo on CPU, NCCL on GPU).

    torchrun --nproc-per-node 2 -m lstmnlp train RECIPE ...

Every rank builds the same model (DDP copies rank 0's weights to the others), trains on its own
shard of the data, and gradients are averaged, so N ranks with batch B step like one process
with batch N x B. Rank 0 alone writes files: tokenizer, checkpoints, metrics, logs.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
from torch import nn

from lstmnlp.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init_world() -> World:
    """Join the process group torchrun describes in the environment (a single process: no group)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("LSTMNLP_DEVICE", "") != "cpu" else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return World(dist.get_rank(), dist.get_world_size())


def barrier(world: World) -> None:
    if world.active:
        torch.distributed.barrier()


def broadcast(value: T, world: World) -> T:
    """Rank 0's `value` on every rank (any picklable object; used for paths and names only)."""
    if not world.active:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flags: Sequence[bool], world: World) -> list[bool]:
    """Each flag true on every rank when it is true on at least one (so all ranks stop together);
    one all-reduce for all of them."""
    if not world.active:
        return list(flags)
    values = torch.tensor([1.0 if flag else 0.0 for flag in flags])
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]


def epoch_shard(make_batches: Callable[..., Sequence[T]], examples: Sequence, train, epoch: int,
                world: World) -> list[T]:
    """This rank's batches of `examples` for `epoch`: `make_batches(examples, batch_size, rng,
    max_tokens=)` shuffled by `train.seed + epoch` (the same on every rank), then sharded."""
    batches = make_batches(examples, train.batch_size, random.Random(train.seed + epoch), max_tokens=train.max_tokens)
    return shard(batches, world)


def shard(batches: Sequence[T], world: World) -> list[T]:
    """This rank's share of a batch list, the same count on every rank (the remainder is dropped)."""
    if not world.active:
        return list(batches)
    usable = len(batches) // world.size * world.size
    return list(batches[:usable][world.rank::world.size])


class LossForward(nn.Module):
    """Makes `model.loss(batch, carry)` the forward pass, so DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, carry=None):
        return self.model.loss(batch, carry)


def wrap(model: nn.Module, world: World, device: torch.device):
    """The callable the Trainer computes losses with: `model.loss`, or a DDP wrapper of it."""
    if not world.active:
        return model.loss
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(LossForward(model), device_ids=[device.index] if device.type == "cuda" else None)


def main_then_others(world: World, prepare, load):
    """Rank 0 runs `prepare()` (e.g. trains the tokenizer into the run); the others wait, then `load()`."""
    if world.is_main:
        result = prepare()
        barrier(world)
        return result
    barrier(world)
    return load()


def refuse_several_processes(config, cv: int) -> None:
    """What data-parallel training cannot do, refused in one line."""
    if cv:
        raise UserError("--cv runs one process; start it without --nproc or torchrun")
    if config.train.ensemble > 1:
        raise UserError("train.ensemble trains its members one after another in one process: "
                        "start it without --nproc or torchrun")
    if config.tokenizer.sampling_alpha:
        raise UserError("tokenizer.sampling_alpha: each process would draw other segmentations, hence other "
                        "batches; start it without --nproc or torchrun")


def launch_ranks(nproc: int, arguments: list[str]) -> int:
    """Re-run `lstmnlp ARGUMENTS` (`--nproc` dropped) under torchrun with `nproc` ranks on this
    machine; its exit code."""
    import subprocess
    import sys

    arguments = list(arguments)
    for index, argument in enumerate(arguments):  # drop "--nproc N" / "--nproc=N"
        if argument == "--nproc":
            del arguments[index:index + 2]
            break
        if argument.startswith("--nproc="):
            del arguments[index]
            break
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "lstmnlp", *arguments]
    return subprocess.run(command).returncode
