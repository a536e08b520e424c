"""`lstmnlp plot` (training curves) and `lstmnlp inspect` (attention, LSTM units, classifier
token weights): pictures of what a run learned."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from lstmnlp.cli_io import console, user_errors
from lstmnlp.errors import UserError

SHADES = " ░▒▓█"


@user_errors
def plot(
    run_dirs: List[Path] = typer.Argument(..., help="One or more run directories, overlaid."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file (default: FIRST_RUN/curves.png)."),
) -> None:
    """Training and validation curves from metrics.jsonl, against steps and wall time."""
    from lstmnlp.ensemble import member_dirs
    from lstmnlp.plots import plot_curves

    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise UserError(f"{run_dir}: run directory not found")
    out = _with_suffix(out or run_dirs[0] / "curves.png")
    _check_parent(out)
    run_dirs = [member for run_dir in run_dirs for member in member_dirs(run_dir)]  # an ensemble: its members
    panels = plot_curves(run_dirs, out)
    console.print(f"{out}: {', '.join(panels)} of {len(run_dirs)} run(s)", highlight=False)


@user_errors
def inspect(
    run_dir: Path = typer.Argument(..., help="A translation, language-model or classifier run."),
    text: Optional[str] = typer.Option(None, "--text", help="Text to inspect."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", help="Read the text from a file (language models)."),
    layer: int = typer.Option(0, "--layer", help="Language models: LSTM layer, 1 = the lowest (default: the top)."),
    units: int = typer.Option(12, "--units", help="Language models: units offered on the page."),
    max_tokens: int = typer.Option(3000, "--max-tokens", help="Language models: inspect at most this many tokens."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG (translation); HTML or PNG (language model, classifier)."),
) -> None:
    """Attention heatmaps (translation), LSTM gates and units (language model), token weights (classifier).

    Translation: attention heatmap (PNG). Language model: gates and cell states per unit (HTML
    or PNG) and the units that track quotes, brackets and line position. Classifier: the weight
    of each token (attention pooling, else gradient saliency)."""
    from lstmnlp.checkpoint import load_run
    from lstmnlp.config import SEQ2SEQ_TASKS
    from lstmnlp.data import read_text

    if text is None and text_file is None:
        raise UserError("inspect needs --text TEXT or --text-file FILE")
    content = text if text is not None else read_text(text_file)
    if not content.strip():
        raise UserError("--text is empty" if text is not None else f"{text_file}: holds no text")
    if out is not None:
        _check_parent(out)
    loaded = load_run(run_dir)
    if loaded.config.task in SEQ2SEQ_TASKS:
        if loaded.config.model.attention == "none":
            raise UserError(f"{run_dir}: this model has no attention to show (model.attention: none)")
        _inspect_translation(loaded, content.split("\n")[0], _with_suffix(out or Path("attention.png")))
    elif loaded.config.task == "lm":
        _inspect_language_model(loaded, content, layer, units, max_tokens, out or Path("units.html"))
    else:
        _inspect_classifier(loaded, content.split("\n")[0], out)


def _inspect_translation(loaded, line: str, out: Path) -> None:
    from lstmnlp.plots import plot_attention
    from lstmnlp.translation import attention_records, translate_lines

    translation = translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer, [line], beam_size=5)[0][0][0]
    record = attention_records(loaded.model, loaded.tokenizer, loaded.target_tokenizer, [line], [translation])[0]
    if not record["source"]:
        raise UserError("--text is empty")
    plot_attention(record, out)
    console.print(f"{line}\n-> {translation}", highlight=False, markup=False)
    table = Table(title=f"attention (darker = more); picture: {out}", show_lines=False, pad_edge=False)
    table.add_column("", no_wrap=True, min_width=max(len(piece) for piece in record["target"]))
    for piece in record["source"]:
        table.add_column(piece.replace("▁", "")[:6] or "▁", justify="center", no_wrap=True)
    for piece, row in zip(record["target"], record["weights"]):
        table.add_row(piece.replace("▁", "") or "▁", *(SHADES[min(4, int(w * 5))] * 2 for w in row))
    console.print(table)


def _inspect_language_model(loaded, text: str, layer: int, units: int, max_tokens: int, out: Path) -> None:
    from lstmnlp.html_pages import unit_page
    from lstmnlp.inspection import inspect_language_model

    layers = loaded.config.model.num_layers
    if not 0 <= layer <= layers:
        raise UserError(f"--layer must lie between 1 and {layers}")
    if loaded.config.model.bidirectional:
        raise UserError("unit inspection needs a unidirectional encoder")
    index = (layer or layers) - 1
    text = _first_tokens(loaded.tokenizer, text, max_tokens)
    report = inspect_language_model(loaded.model, loaded.tokenizer, text, layer=index,
                                    backward=loaded.config.model.backward)
    chosen = list(dict.fromkeys(unit for pairs in report.correlations.values() for unit, _ in pairs))
    spread = report.traces[index].cell.tanh().std(0).argsort(descending=True).tolist()
    chosen = (chosen + [u for u in spread if u not in chosen])[:max(units, 1)]
    if out.suffix.lower() == ".png":
        from lstmnlp.plots import plot_units

        cells = report.traces[index].cell.tanh()
        best = [(feature, pairs[0]) for feature, pairs in report.correlations.items() if pairs]
        plot_units(report.tokens, [(f"layer {index + 1} unit {unit}: tanh(cell), tracks {feature} (r={r:+.2f})",
                                    cells[:, unit].tolist()) for feature, (unit, r) in best], out)
    else:
        unit_page(report, index, chosen, out, f"{loaded.run_dir.name}: LSTM units of layer {index + 1}")
    table = Table(title=f"layer {index + 1}: units whose cell state tracks a feature ({len(report.tokens):,} tokens)")
    table.add_column("feature")
    table.add_column("unit (Pearson r)")
    for feature, pairs in report.correlations.items():
        table.add_row(feature, ", ".join(f"{unit} ({r:+.2f})" for unit, r in pairs) or "(constant in this text)")
    console.print(table)
    console.print(f"{'picture' if out.suffix.lower() == '.png' else 'page'}: {out}", highlight=False)


def _first_tokens(tokenizer, text: str, limit: int) -> str:
    """The longest prefix of whole lines within about `limit` tokens (at least one line)."""
    kept, count = [], 0
    for line in text.split("\n"):
        count += len(tokenizer.encode(line)) + 1
        if kept and count > limit:
            break
        kept.append(line)
    return "\n".join(kept)


def _inspect_classifier(loaded, line: str, out: Optional[Path]) -> None:
    from lstmnlp.inspection import classifier_token_weights

    if loaded.config.data.lowercase:
        line = line.lower()
    pieces, weights, method, predicted = classifier_token_weights(loaded.model, loaded.tokenizer, line)
    label = loaded.meta["labels"][predicted]
    rendered = Text()
    top = max(weights) or 1.0
    for piece, weight in zip(pieces, weights):
        level = int(255 - 200 * weight / top)
        rendered.append(piece.replace("▁", " "), style=f"on rgb(255,{level},{level})")
    console.print(f"predicted: [bold]{label}[/bold]   token weights by {method}:")
    console.print(rendered)
    if out is not None and out.suffix.lower() == ".png":
        from lstmnlp.plots import plot_units

        plot_units([piece.replace("▁", " ") for piece in pieces],
                   [(f"predicted {label}: token weights by {method}", [w / top for w in weights])], out)
        console.print(f"picture: {out}", highlight=False)
    elif out is not None:
        from lstmnlp.html_pages import token_weights_page

        token_weights_page(pieces, weights, f"{label} ({method})", out)
        console.print(f"page: {out}", highlight=False)


def _check_parent(out: Path) -> None:
    if not out.parent.exists():
        raise UserError(f"{out.parent}: output directory does not exist")
    if out.is_dir():
        raise UserError(f"{out}: is a directory; --out takes a file name")


def _with_suffix(picture: Path) -> Path:
    """The file matplotlib writes: it adds .png to a name without a suffix."""
    return picture if picture.suffix else picture.with_suffix(".png")
