"""Pictures with matplotlib (the optional `plot` extra): training curves and attention heatmaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from lstmnlp.errors import UserError

INSTALL_HINT = "matplotlib is not installed: pip install 'lstmnlp[plot]' (or pip install matplotlib)"
TASK_METRICS = ("valid_bleu", "valid_accuracy", "valid_ppl")  # the first one a run logs is drawn


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a UserError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir}: no metrics.jsonl (not a run directory?)")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    if not records:
        raise UserError(f"{path}: no records yet")
    return records


def plot_curves(run_dirs: Sequence[Path], out: Path) -> list[str]:
    """Loss and the task's validation metric against steps and wall time, runs overlaid; returns
    the panels drawn."""
    plt = pyplot()
    runs = [(Path(run).name, read_metrics(run)) for run in run_dirs]
    metric = next((key for key in TASK_METRICS for _, records in runs
                   if any(key in record for record in records)), None)
    rows = 2 if metric else 1
    figure, axes = plt.subplots(rows, 2, figsize=(11, 4 * rows), squeeze=False)
    for name, records in runs:
        train = [r for r in records if r.get("event") == "train"]
        valid = [r for r in records if r.get("event") == "valid"]
        for column, x_key in enumerate(("step", "elapsed_s")):
            axis = axes[0][column]
            line, = axis.plot([r[x_key] for r in train], [r["train_loss"] for r in train], alpha=0.6,
                              label=f"{name} train")
            axis.plot([r[x_key] for r in valid], [r["valid_loss"] for r in valid], "o-", color=line.get_color(),
                      label=f"{name} valid")
            if metric:
                points = [r for r in valid if metric in r]
                axes[1][column].plot([r[x_key] for r in points], [r[metric] for r in points], "o-", label=name)
    for column, x_label in enumerate(("step", "seconds")):
        axes[0][column].set(xlabel=x_label, ylabel="loss", title=f"loss against {x_label}")
        axes[0][column].legend(fontsize=8)
        if metric:
            axes[1][column].set(xlabel=x_label, ylabel=metric, title=f"{metric} against {x_label}")
            axes[1][column].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return ["loss"] + ([metric] if metric else [])


def plot_attention(record: dict[str, Any], out: Path) -> None:
    """Heatmap of one attention matrix: target pieces down, source pieces across."""
    plt = pyplot()
    source, target, weights = record["source"], record["target"], record["weights"]
    figure, axis = plt.subplots(figsize=(max(4, 0.45 * len(source) + 2), max(3, 0.4 * len(target) + 1.5)))
    image = axis.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axis.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=9)
    axis.set_yticks(range(len(target)), target, fontsize=9)
    axis.set(xlabel="source", ylabel="translation")
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def plot_units(tokens: list[str], rows: list[tuple[str, list[float]]], out: Path, *, width: int = 90,
               max_lines: int = 6) -> None:
    """Text colored by unit activations in [-1, 1] (red positive, blue negative), one panel per
    (title, values) row, in the style of Karpathy et al. 2015's figures."""
    plt = pyplot()
    from matplotlib.patches import Rectangle

    cells = []  # (line, column, character, token index)
    line = column = 0
    for index, token in enumerate(tokens):
        for character in token:
            if line >= max_lines:
                break
            if character == "\n" or column >= width:
                cells.append((line, column, "↵" if character == "\n" else character, index))
                line, column = line + 1, 0
                continue
            cells.append((line, column, character, index))
            column += 1
    lines = min(max_lines, line + 1)
    figure, axes = plt.subplots(len(rows), 1, figsize=(width * 0.11, len(rows) * (lines * 0.24 + 0.5)), squeeze=False)
    for axis, (title, values) in zip(axes[:, 0], rows):
        for line_number, column_number, character, index in cells:
            value = max(-1.0, min(1.0, values[index]))
            color = (0.86, 0.24, 0.16, abs(value)) if value >= 0 else (0.16, 0.35, 0.86, abs(value))
            axis.add_patch(Rectangle((column_number, -line_number - 1), 1, 1, color=color, linewidth=0))
            axis.text(column_number + 0.5, -line_number - 0.5, character, ha="center", va="center",
                      family="monospace", fontsize=8)
        axis.set_xlim(0, width)
        axis.set_ylim(-lines, 0)
        axis.set_title(title, fontsize=9, loc="left")
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
