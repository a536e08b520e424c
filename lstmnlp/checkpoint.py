"""One save/load for every command: a run directory is a self-contained bundle.

    runs/NAME/
      config.yaml          the resolved recipe
      tokenizer.model      sentencepiece model (and tokenizer.vocab)
      model.safetensors    best weights by validation
      last.safetensors     latest weights
      trainer_state.pt     last weights, optimizer, position, RNG (loads with torch.load(weights_only=True))
      meta.json            task, sizes, versions, best metric
      metrics.jsonl        one JSON object per logged event

Weights are safetensors, so loading never unpickles. Every write is atomic: a temporary file,
fsync, then rename, so a killed process leaves the previous file loadable.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lstmnlp.config import ExperimentConfig, config_from_dict
from lstmnlp.recipe_tree import read_yaml
from lstmnlp.errors import UserError

BEST_WEIGHTS = "model.safetensors"
LAST_WEIGHTS = "last.safetensors"
TRAINER_STATE = "trainer_state.pt"
META = "meta.json"
CONFIG = "config.yaml"
TOKENIZER = "tokenizer.model"
TARGET_TOKENIZER = "target_tokenizer.model"
METRICS = "metrics.jsonl"
ENSEMBLE = "ensemble.json"  # a directory of member runs (train.ensemble): {"members": [names]}


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary_path)`, fsync it, and rename it over `path` (which is never left half
    written). A place that cannot be written (no permission, a full disk) is a UserError."""
    path = Path(path)
    try:
        _write_and_rename(path, write)
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror or error})") from None


def _write_and_rename(path: Path, write: Callable[[Path], None]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
    try:
        write(Path(temporary))
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _tied_groups(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """A `state_dict(keep_vars=True)`'s names grouped by tensor: a tied weight (one Parameter under
    two names) is one group, each name sorted, so the first one is what safetensors' save_model kept too."""
    groups: dict[int, list[str]] = {}
    for name, tensor in state.items():
        groups.setdefault(id(tensor), []).append(name)
    return [sorted(names) for names in groups.values()]


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Weights as safetensors on the CPU, tied tensors stored once. Each tensor is copied out on
    its own: on a GPU, cuDNN keeps an LSTM's weights as views of one flat buffer, which
    safetensors' save_model refuses to write."""
    from safetensors.torch import save_file

    state = model.state_dict(keep_vars=True)
    tensors = {names[0]: state[names[0]].detach().to("cpu", copy=True).contiguous() for names in _tied_groups(state)}
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata={"format": "pt"}))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load safetensors weights into `model` (on any device); a damaged or foreign file is a UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UserError(f"{path}: weights not found")
    try:
        tensors = load_file(str(path))
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise UserError(f"{path}: cannot load weights ({str(error).splitlines()[0]}); "
                        "the file is damaged or belongs to another model") from None
    loaded_through_a_tie = {name for names in _tied_groups(model.state_dict(keep_vars=True))
                            if any(n in tensors for n in names) for name in names}
    missing = [name for name in missing if name not in loaded_through_a_tie]
    if missing or unexpected:
        raise UserError(f"{path}: weights do not match the model in config.yaml "
                        f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")


def save_trainer_state(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda temporary: torch.save(state, temporary))


def keep_step_copy(run_dir: Path, step: int, keep: int) -> None:
    """Copy last.safetensors to checkpoints/step-NNNNNNN.safetensors; keep only the `keep` newest."""
    import shutil

    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    atomic_write(folder / f"step-{step:07d}.safetensors",
                 lambda temporary: shutil.copyfile(run_dir / LAST_WEIGHTS, temporary))
    for old in sorted(folder.glob("step-*.safetensors"))[:-keep]:
        old.unlink()


def ready_to_train(folder: Path) -> bool:
    """Whether `folder` holds a stopped run to resume (its trainer state). A folder stopped before
    its first checkpoint is removed (nothing in it to keep); weights without a trainer state are
    refused rather than overwritten."""
    import shutil

    if (folder / TRAINER_STATE).is_file():
        return True
    if folder.is_dir():
        if any(folder.glob("*.safetensors")):
            raise UserError(f"{folder}: weights without a trainer state; move it away to train it again")
        shutil.rmtree(folder)
    return False


def git_commit() -> str | None:
    """The commit of the lstmnlp source tree, when it is a git checkout."""
    import subprocess

    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")


def run_meta(task: str, **fields: Any) -> dict[str, Any]:
    """meta.json contents: task, versions, and the given fields."""
    import platform

    import lstmnlp

    import sentencepiece

    return {"task": task, "lstmnlp_version": lstmnlp.__version__, "torch_version": torch.__version__,
            "sentencepiece_version": sentencepiece.__version__, "python_version": platform.python_version(),
            "git_commit": git_commit(), **fields}


def write_result_meta(run_dir: Path, meta: dict[str, Any], result: Any) -> None:
    """meta.json after training: the base fields plus the TrainResult."""
    write_meta(run_dir, {**meta, "step": result.steps, "best_step": result.best_step,
                         "best_metrics": result.best_metrics, "stop_reason": result.stop_reason,
                         "elapsed_s": round(result.elapsed_s, 1)})


def read_meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / META
    if not path.is_file():
        raise UserError(f"{run_dir}: not an lstmnlp run directory (no {META})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: damaged run metadata") from None


@dataclass
class LoadedRun:
    """A trained model ready for inference."""

    run_dir: Path
    config: ExperimentConfig
    meta: dict[str, Any]
    tokenizer: Any  # lstmnlp.tokenizer.Tokenizer (the source side for translation)
    model: torch.nn.Module
    target_tokenizer: Any = None  # translation: the target side (the same object when joint)


def load_run(run_dir: Path, *, expected_task: str | tuple[str, ...] | None = None,
             weights: str = BEST_WEIGHTS) -> LoadedRun:
    """Load config, tokenizer and weights of a run for inference (model in eval mode);
    `expected_task`: the task, or the tasks, the calling command works with."""
    from lstmnlp.models import build_model
    from lstmnlp.tokenizer import Tokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    if (run_dir / ENSEMBLE).is_file():
        raise UserError(f"{run_dir}: an ensemble of runs; this command takes one of them "
                        f"(a member directory inside it)")
    meta = read_meta(run_dir)
    config = config_from_dict(read_yaml(run_dir / CONFIG))
    expected = (expected_task,) if isinstance(expected_task, str) else expected_task
    if expected is not None and config.task not in expected:
        raise UserError(f"{run_dir}: a run of task {config.task!r}; this command needs task "
                        + " or ".join(repr(task) for task in expected))
    tokenizer = Tokenizer(run_dir / TOKENIZER)
    if tokenizer.vocab_size != meta.get("vocab_size"):
        raise UserError(f"{run_dir / TOKENIZER}: tokenizer has {tokenizer.vocab_size} pieces but the "
                        f"model was trained with {meta.get('vocab_size')}: it does not belong to this run")
    target_tokenizer = tokenizer
    if (run_dir / TARGET_TOKENIZER).is_file():
        target_tokenizer = Tokenizer(run_dir / TARGET_TOKENIZER)
    model = build_model(config, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                        target_vocab_size=target_tokenizer.vocab_size, num_classes=len(meta.get("labels", [])),
                        hidden_classes=len(meta.get("hidden_labels", [])))
    load_weights(model, run_dir / weights)
    model.eval()
    return LoadedRun(run_dir, config, meta, tokenizer, model, target_tokenizer)


def latest_run(base: Path = Path("runs")) -> Path:
    """The most recently written run directory under `base` (a single run or an ensemble)."""
    found = [path / name for path in base.glob("*") for name in (BEST_WEIGHTS, ENSEMBLE)
             if (path / name).is_file()] if base.is_dir() else []
    if not found:
        raise UserError(f"no trained run found in {base}/: train one with `lstmnlp train` or pass RUN_DIR")
    return max(found, key=lambda path: path.stat().st_mtime).parent


def remove_unfinished(run_dir: Path, *, keep_dir: bool) -> None:
    """Clear a new run directory whose training failed before any weights were saved (bad data, a
    wrong file, a stop while preparing): its config and tokenizer alone cannot be resumed, and they
    would make the same --out refuse the next try. Nothing goes once any `*.safetensors` exists in
    it (a run, an ensemble member or a cross-validation fold that can be resumed). `keep_dir`: leave
    the directory itself, empty (a --out the user named)."""
    import shutil

    if not run_dir.is_dir() or any(run_dir.rglob("*.safetensors")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    if keep_dir:
        run_dir.mkdir(exist_ok=True)


def create_run_dir(out: Path | None, name: str, base: Path = Path("runs")) -> Path:
    """A new, empty run directory: `out` if given (refused when it already holds a run),
    else runs/NAME-YYYYmmdd-HHMMSS."""
    import time

    if out is None:
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = base / f"{name}-{stamp}"
        suffix = 1
        while out.exists():
            suffix += 1
            out = base / f"{name}-{stamp}-{suffix}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: already holds a run; add --resume to continue it, or pick another --out "
                        "(a run is never overwritten)")
    if not out.parent.exists():
        raise UserError(f"{out.parent}: directory does not exist")
    out.mkdir(parents=False, exist_ok=True)
    return out


def resumable_config(run_dir: Path, recipe: Path | None, overrides: list[str]) -> ExperimentConfig:
    """The config to resume `run_dir` with: the recipe (or the run's own config.yaml) plus
    overrides, whose task, data, tokenizer and model must equal the run's; only `train` may change."""
    import dataclasses

    from lstmnlp.config import load_config

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UserError(f"{run_dir}: nothing to resume (no {CONFIG}); train without --resume")
    saved = config_from_dict(read_yaml(run_dir / CONFIG))
    config = load_config(recipe, overrides, base=None if recipe else dataclasses.asdict(saved))
    for section in ("task", "name", "data", "tokenizer", "model"):
        old, new = getattr(saved, section), getattr(config, section)
        if old == new:
            continue
        if not dataclasses.is_dataclass(old):
            raise UserError(f"{section}: {new!r} differs from the run's {old!r}; resume with the run's recipe")
        for key in (f.name for f in dataclasses.fields(old)):
            if getattr(old, key) != getattr(new, key):
                raise UserError(f"{section}.{key}: {getattr(new, key)!r} differs from the run's "
                                f"{getattr(old, key)!r}; only train.* may change on --resume")
    return config
