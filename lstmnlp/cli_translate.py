"""`lstmnlp translate` and `lstmnlp evaluate` (BLEU/chrF of translations, or a classifier's scores)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lstmnlp.cli_classify import evaluate_classifier
from lstmnlp.cli_io import check_no_repeat_ngram_size, console, error_console, map_lines, user_errors
from lstmnlp.config import SEQ2SEQ_TASKS
from lstmnlp.errors import UserError


PRECISION_HELP = ("fp32, bf16 (autocast), or auto: bf16 for beam search over batches of 16 or more where "
                  "the hardware has native bf16, else fp32.")


@user_errors
def translate(
    run_dirs: list[Path] = typer.Argument(..., help="Run directory of a translation model; several: an "
                                          "ensemble (one vocabulary).", metavar="RUN_DIR..."),
    input: Optional[Path] = typer.Option(None, "--input", help="Source text, one sentence a line (default: stdin)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Output file (default: stdout)."),
    beam_size: int = typer.Option(5, "--beam-size", help="Beams per sentence (1 is greedy)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sentences decoded together."),
    length_penalty: float = typer.Option(1.0, "--length-penalty", help="GNMT alpha; 0 ranks by log-probability."),
    max_length_ratio: float = typer.Option(1.5, "--max-length-ratio", help="Output pieces <= R x source + 5."),
    nbest: int = typer.Option(1, "--nbest", help="Translations per sentence, one line each, best first."),
    scores: bool = typer.Option(False, "--scores", help="Prefix each translation with its log-probability and a tab."),
    save_attention: Optional[Path] = typer.Option(None, "--save-attention",
                                                  help="Write the attention matrices of the best translations as JSON."),
    quantize: str = typer.Option("", "--quantize", help="int8: dynamic int8 quantization for faster CPU decoding."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    no_repeat_ngram_size: int = typer.Option(0, "--no-repeat-ngram-size",
                                             help="N > 0: no translation repeats an N-gram of pieces."),
    temperature: float = typer.Option(0.0, "--temperature",
                                      help="Above 0: draw translations from the model instead of beam "
                                           "search (--nbest draws a sentence, best first)."),
    top_k: int = typer.Option(0, "--top-k", help="Sampling: from the K most likely pieces (0: all)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Sampling: nucleus mass (1: all)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling: same seed and options, same draws."),
    prefix: Optional[Path] = typer.Option(None, "--prefix", help="Target prefixes, one per input line: each "
                                          "translation begins with its line (forced), an empty line leaves it free."),
) -> None:
    """Translate text with a trained model: one line in, one line out, input order kept."""
    if beam_size < 1 or batch_size < 1 or nbest < 1 or max_length_ratio <= 0:
        raise UserError("--beam-size, --batch-size and --nbest must be at least 1, --max-length-ratio positive")
    check_no_repeat_ngram_size(no_repeat_ngram_size)
    sampling = sampling_options(temperature, top_k, top_p, seed)
    if nbest > beam_size and sampling is None:
        raise UserError("--nbest cannot exceed --beam-size")
    check_precision(precision)
    from lstmnlp.data import read_lines
    from lstmnlp.ensemble import Seq2SeqEnsemble, load_translation_ensemble
    from lstmnlp.quantize import apply_quantize
    from lstmnlp.translation import translate_lines

    loaded = load_translation_ensemble(run_dirs, expected_task=SEQ2SEQ_TASKS)
    if save_attention is not None and isinstance(loaded.model, Seq2SeqEnsemble):
        raise UserError("--save-attention is for one model, not an ensemble")
    if save_attention is not None and loaded.config.model.attention == "none":
        raise UserError(f"--save-attention: {loaded.run_dir} has no attention (model.attention: none)")
    loaded.model = apply_quantize(loaded.model, quantize)
    if save_attention is not None and not save_attention.parent.exists():
        raise UserError(f"{save_attention.parent}: output directory does not exist")
    if output is not None and not output.parent.exists():
        raise UserError(f"{output.parent}: output directory does not exist")
    device = next(loaded.model.parameters()).device
    bf16 = not quantize and decode_in_bf16(precision, 1 if sampling else beam_size, batch_size, device)
    prefixes = read_lines(prefix) if prefix is not None else None

    def render(lines: list[str]) -> list[str]:
        if prefixes is not None and len(prefixes) != len(lines):
            raise UserError(f"--prefix {prefix}: {len(prefixes):,} line(s) for {len(lines):,} input line(s); "
                            "give one prefix a line (an empty line for none)")
        results = translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer, lines,
                                  beam_size=beam_size, batch_size=batch_size, alpha=length_penalty,
                                  max_length_ratio=max_length_ratio, nbest=nbest,
                                  max_source_length=4 * loaded.config.data.max_length,
                                  no_repeat_ngram_size=no_repeat_ngram_size, sampling=sampling, bf16=bf16,
                                  prefixes=prefixes,
                                  warn=lambda text: error_console.print(f"[yellow]warning:[/yellow] {text}",
                                                                        highlight=False))
        if save_attention is not None:
            _write_attention(loaded, lines, [candidates[0][0] for candidates in results], save_attention)
        return [f"{score:.4f}\t{text}" if scores else text
                for candidates in results for text, score in candidates[:nbest]]

    map_lines(input, output, render, interactive=save_attention is None and prefix is None)


def _write_attention(loaded, lines: list[str], translations: list[str], path: Path) -> None:
    """`--save-attention`: the best translations' attention matrices as one JSON file."""
    import json

    from lstmnlp.checkpoint import atomic_write_text
    from lstmnlp.translation import attention_records

    records = attention_records(loaded.model, loaded.tokenizer, loaded.target_tokenizer, lines, translations)
    atomic_write_text(path, json.dumps(records, ensure_ascii=False) + "\n")


def sampling_options(temperature: float, top_k: int, top_p: float, seed: int | None):
    """`translate --temperature/--top-k/--top-p/--seed` as a `Sampling`, or None for beam search."""
    from lstmnlp.translation import Sampling

    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise UserError("--temperature and --top-k must not be negative, --top-p must lie in (0, 1]")
    if temperature == 0:
        if top_k or top_p < 1 or seed is not None:
            raise UserError("--top-k, --top-p and --seed are for sampling: set --temperature above 0")
        return None
    return Sampling(temperature, top_k, top_p, seed)


def check_precision(precision: str) -> None:
    if precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"--precision {precision!r}: choose auto, fp32 or bf16")


def decode_in_bf16(precision: str, beam_size: int, batch_size: int, device) -> bool:
    """`--precision`: bf16 autocast pays for beam search over batches (1.28-1.74x, beam 5 at batch
    64, BLEU within 0.13 on Multi30k). At batch 1 it cost on one AVX-512 BF16 machine (0.76-0.86x)
    and paid on another (1.56-1.76x); greedy search over batches gained 1.09-1.36x on the first
    with BLEU -0.26. So `auto` keeps fp32 for those, and takes bf16 only on native hardware."""
    from lstmnlp.precision import use_bf16

    if precision == "auto" and (beam_size < 2 or batch_size < 16):
        return False
    return use_bf16(precision, device)


@user_errors
def evaluate(
    targets: Optional[list[str]] = typer.Argument(None, help="`bleu` to score files (the default with --hyp), or "
                                                  "a translation or classifier RUN_DIR (several: an ensemble).",
                                                  metavar="bleu|RUN_DIR..."),
    hyp: Optional[Path] = typer.Option(None, "--hyp", help="Hypotheses, one per line (with `bleu`)."),
    ref: Optional[Path] = typer.Option(None, "--ref", help="References, one per line, plain text."),
    input: Optional[Path] = typer.Option(None, "--input", help="Source text to translate, or texts to classify."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Gold labels, one per line (classifier runs)."),
    beam_size: int = typer.Option(5, "--beam-size", help="Beams when translating."),
    quantize: str = typer.Option("", "--quantize", help="int8: translate with the int8-quantized model."),
    precision: str = typer.Option("auto", "--precision", help="Translation runs: " + PRECISION_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    no_repeat_ngram_size: int = typer.Option(0, "--no-repeat-ngram-size",
                                             help="Translation runs: N > 0: no translation repeats an N-gram."),
    nbsvm: bool = typer.Option(True, "--nbsvm/--no-nbsvm", help="Classifier runs: mix in the run's NBSVM "
                               "where it has one; --no-nbsvm: the BiLSTM alone."),
) -> None:
    """BLEU and chrF of translations, or a classifier's accuracy, macro-F1 and confusion matrix.

    Translation: sacrebleu (13a, cased, detokenized) of files or of a run's translations."""
    import json

    from lstmnlp.data import read_lines
    from lstmnlp.metrics import bleu_and_chrf

    if not targets:
        if hyp is None:
            raise UserError("evaluate needs a RUN_DIR (with --input), or --hyp FILE and --ref FILE")
        targets = ["bleu"]  # files alone: what else could be meant
    target, run_dirs = targets[0], [Path(name) for name in targets]
    check_no_repeat_ngram_size(no_repeat_ngram_size)
    check_precision(precision)
    if target == "bleu" and len(targets) > 1:
        raise UserError("evaluate bleu takes no run directory: evaluate bleu --hyp F --ref F")
    if target != "bleu" and _run_task(run_dirs[0]) == "classify":
        evaluate_classifier(run_dirs, input, labels, json_output, use_nbsvm=nbsvm)
        return
    if ref is None:
        raise UserError("evaluate needs --ref FILE (the reference translations)")
    if target == "bleu":
        if hyp is None:
            raise UserError("evaluate bleu needs --hyp FILE and --ref FILE")
        hypotheses = read_lines(hyp)
    else:
        if input is None:
            raise UserError("evaluate RUN_DIR needs --input FILE (source) and --ref FILE")
        from lstmnlp.ensemble import load_translation_ensemble
        from lstmnlp.quantize import apply_quantize
        from lstmnlp.translation import translate_lines

        loaded = load_translation_ensemble(run_dirs, expected_task=SEQ2SEQ_TASKS)
        loaded.model = apply_quantize(loaded.model, quantize)
        device = next(loaded.model.parameters()).device
        bf16 = not quantize and decode_in_bf16(precision, beam_size, 64, device)  # translate's default batch
        results = translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer, read_lines(input),
                                  beam_size=beam_size, batch_size=64, no_repeat_ngram_size=no_repeat_ngram_size,
                                  bf16=bf16)
        hypotheses = [candidates[0][0] for candidates in results]
    result = bleu_and_chrf(hypotheses, read_lines(ref))
    if json_output:
        print(json.dumps(result.as_dict()))
        return
    console.print(f"BLEU {result.bleu:.2f}  chrF {result.chrf:.2f}", highlight=False)
    console.print(result.bleu_signature, highlight=False)
    console.print(result.chrf_signature, highlight=False)


def _run_task(run_dir: Path) -> str:
    from lstmnlp.ensemble import run_task

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found (or use `evaluate bleu --hyp F --ref F`)")
    return run_task(run_dir)
