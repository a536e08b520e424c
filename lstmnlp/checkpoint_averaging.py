"""Average the last checkpoints of a run into a new run (fairseq's average_checkpoints.py,
OpenNMT-py's onmt_average_models): the mean of weights saved a few thousand steps apart.

The checkpoints are the ones `train.keep_last` keeps in RUN/checkpoints/step-NNNNNNN.safetensors.
The new run holds the original's config, tokenizer and other files with model.safetensors the
average; the original run is only read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from lstmnlp import checkpoint
from lstmnlp.errors import UserError

CHECKPOINTS = "checkpoints"
# What the averaged run leaves out: the training state and weights it replaces.
NOT_COPIED = {checkpoint.BEST_WEIGHTS, checkpoint.LAST_WEIGHTS, checkpoint.TRAINER_STATE}


def kept_checkpoints(run_dir: Path, last: int = 0) -> list[Path]:
    """The `last` newest kept checkpoints of a run (0: all), oldest first; at least two."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    if (run_dir / checkpoint.ENSEMBLE).is_file():
        raise UserError(f"{run_dir}: an ensemble of runs; average one member's checkpoints (a directory inside it)")
    found = sorted((run_dir / CHECKPOINTS).glob("step-*.safetensors"))
    chosen = found[-last:] if last else found
    if len(chosen) < 2:
        raise UserError(f"{run_dir}: {len(found)} kept checkpoint(s) in {CHECKPOINTS}/; averaging needs two or "
                        "more: train with --set train.keep_last=N (N >= 2)")
    return chosen


def average_weights(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The elementwise mean of safetensors files holding the same tensors (summed in fp32 or
    wider, stored in each tensor's own dtype); integer tensors must agree and are kept."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    sums: dict[str, torch.Tensor] = {}
    first: dict[str, torch.Tensor] = {}
    for path in paths:
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise UserError(f"{path}: cannot load weights ({str(error).splitlines()[0]})") from None
        if first and (tensors.keys() != first.keys()
                      or any(tensors[name].shape != first[name].shape for name in first)):
            raise UserError(f"{path}: holds other tensors than {paths[0]}; checkpoints of one run only")
        for name, tensor in tensors.items():
            if not tensor.is_floating_point():
                if first and not torch.equal(tensor, first[name]):
                    raise UserError(f"{path}: integer tensor {name} differs from {paths[0]}")
                continue
            wide = tensor.to(torch.promote_types(tensor.dtype, torch.float32))
            sums[name] = wide if name not in sums else sums[name].add_(wide)
        first = first or tensors
    return {name: (sums[name] / len(paths)).to(tensor.dtype) if name in sums else tensor
            for name, tensor in first.items()}


def write_averaged_run(run_dir: Path, paths: list[Path], out: Path) -> None:
    """A new run directory `out`: the run's files, model.safetensors the average of `paths`,
    meta.json naming them. Built in a temporary folder, loaded once, then renamed into place."""
    from safetensors.torch import save_file

    if out.exists():
        raise UserError(f"{out}: already exists; choose another --out (nothing is overwritten)")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: folder not found")
    averaged = average_weights(paths)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as temporary:
        building = Path(temporary) / out.name
        building.mkdir()
        for item in run_dir.iterdir():
            if item.is_file() and item.name not in NOT_COPIED:
                shutil.copy2(item, building / item.name)
        save_file(averaged, str(building / checkpoint.BEST_WEIGHTS))
        meta = checkpoint.read_meta(run_dir)
        meta["averaged_checkpoints"] = [path.name for path in paths]
        meta["averaged_from"] = str(run_dir)
        checkpoint.write_meta(building, meta)
        checkpoint.load_run(building)  # the average loads into the run's model, or a clear error
        building.rename(out)
