"""The Python interface: trained runs used from code, with the commands' own functions.

    import lstmnlp

    lm = lstmnlp.load("runs/char-lm")               # `lstmnlp generate` / `lstmnlp score`
    lm.generate("ROMEO:", max_tokens=200, seed=1)   # the text after the prompt
    lm.score("To be, or not to be.\\n")["perplexity"]
    classifier = lstmnlp.load("runs/sst2")          # `lstmnlp classify`
    classifier.classify(["a gripping film"])        # ["positive"]
    translator = lstmnlp.load("runs/de-en")         # `lstmnlp translate`
    translator.translate(["Ein Hund läuft."])       # ["A dog is running."]

`load` takes several runs, or an ensemble run, as the commands do (their probabilities
averaged), and `quantize="int8"` as `--quantize int8`. Mistakes raise `lstmnlp.errors.UserError`
with the commands' messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lstmnlp import checkpoint
from lstmnlp.config import SEQ2SEQ_TASKS
from lstmnlp.errors import UserError

PathLike = str | Path


def load(*run_dirs: PathLike, quantize: str = "") -> LanguageModelRun | ClassifierRun | TranslatorRun:
    """The run(s) as one model of their task: a language model, a classifier or a translator
    (a translation or autoencoder run)."""
    from lstmnlp.ensemble import member_dirs

    if not run_dirs:
        raise UserError("load: name at least one run directory")
    paths = [Path(run_dir) for run_dir in run_dirs]
    first = member_dirs(paths[0])[0]
    if not (first / checkpoint.META).is_file():
        raise UserError(f"{first}: not a trained run (no {checkpoint.META})")
    task = checkpoint.read_meta(first).get("task")
    if task == "lm":
        return LanguageModelRun(paths, quantize)
    if task == "classify":
        return ClassifierRun(paths, quantize)
    if task in SEQ2SEQ_TASKS:
        return TranslatorRun(paths, quantize)
    raise UserError(f"{first}: unknown task {task!r}")


class LanguageModelRun:
    """A language model (or an ensemble of them): `generate`, `complete`, `score`, `score_lines`."""

    def __init__(self, run_dirs: Sequence[Path], quantize: str = "") -> None:
        from lstmnlp.ensemble import load_language_model_ensemble
        from lstmnlp.quantize import apply_quantize

        self.loaded = load_language_model_ensemble(run_dirs)
        self.loaded.model = apply_quantize(self.loaded.model, quantize)
        self.backward = self.loaded.config.model.backward

    def generate(self, prompt: str = "", *, max_tokens: int = 200, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, beam_size: int = 1,
                 no_repeat_ngram_size: int = 0, lines: int = 0) -> str:
        """The text the model writes after `prompt` (a backward model: before it), without the
        prompt; `lstmnlp generate` with the same options and seed writes the same text."""
        from lstmnlp.language_modeling import beam_generate, generate_text

        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        if beam_size > 1:
            return beam_generate(model, tokenizer, prompt=prompt, max_tokens=max_tokens, beam_size=beam_size,
                                 no_repeat_ngram_size=no_repeat_ngram_size, backward=self.backward,
                                 one_line=lines == 1)[0][0]
        return generate_text(model, tokenizer, prompt=prompt, max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed, no_repeat_ngram_size=no_repeat_ngram_size,
                             backward=self.backward, lines=lines)

    def complete(self, prompts: Sequence[str], *, max_tokens: int = 200, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, beam_size: int = 1, num_samples: int = 1,
                 no_repeat_ngram_size: int = 0, batch_size: int = 64) -> list[list[str]]:
        """`lstmnlp generate --input`: for each one-line prompt, `num_samples` lines, the prompt's
        line as the model ends it (prompt included), in batches of `batch_size` rows."""
        from lstmnlp.line_completion import complete_lines

        return complete_lines(self.loaded.model, self.loaded.tokenizer, prompts, max_tokens=max_tokens,
                              temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, beam_size=beam_size,
                              num_samples=num_samples, no_repeat_ngram_size=no_repeat_ngram_size,
                              backward=self.backward, batch_size=batch_size)

    def score(self, text: str) -> dict:
        """`lstmnlp score --json` of `text`: tokens, nll_per_token, perplexity, words, ..."""
        from lstmnlp.language_modeling import score_text

        return score_text(self.loaded.model, self.loaded.tokenizer, text, backward=self.backward).as_dict()

    def score_lines(self, lines: Sequence[str]) -> list[dict]:
        """`lstmnlp score --per-line`: each line on its own, in input order."""
        from lstmnlp.language_modeling import score_lines

        return score_lines(self.loaded.model, self.loaded.tokenizer, lines, backward=self.backward)


class ClassifierRun:
    """A classifier (or an ensemble of them): `labels`, `classify`, `probabilities`."""

    def __init__(self, run_dirs: Sequence[Path], quantize: str = "") -> None:
        from lstmnlp.ensemble import classifier_labels, load_runs

        if quantize:
            raise UserError("quantize: int8 is for language models and translation (as their commands)")
        self.runs = load_runs(run_dirs, expected_task="classify")
        self.labels: list[str] = classifier_labels(self.runs)

    def probabilities(self, texts: Sequence[str], *, nbsvm: bool = True) -> list[dict[str, float]]:
        """Each text's probability of every label, as `lstmnlp classify --json` gives them (with
        the runs' NBSVM mixed in unless `nbsvm` is False)."""
        from lstmnlp.ensemble import predict_ensemble

        rows = predict_ensemble(self.runs, list(texts), use_nbsvm=nbsvm).tolist()
        return [dict(zip(self.labels, row)) for row in rows]

    def classify(self, texts: Sequence[str], *, nbsvm: bool = True) -> list[str]:
        """The most probable label of each text, in input order."""
        return [max(scores, key=scores.__getitem__) for scores in self.probabilities(texts, nbsvm=nbsvm)]


class TranslatorRun:
    """A translation model (or an ensemble; an autoencoder reconstructs): `translate`, `score_lines`."""

    def __init__(self, run_dirs: Sequence[Path], quantize: str = "") -> None:
        from lstmnlp.ensemble import load_translation_ensemble
        from lstmnlp.quantize import apply_quantize

        self.loaded = load_translation_ensemble(run_dirs, expected_task=SEQ2SEQ_TASKS)
        self.loaded.model = apply_quantize(self.loaded.model, quantize)

    def translate(self, lines: Sequence[str], *, beam_size: int = 5, batch_size: int = 64,
                  length_penalty: float = 1.0, max_length_ratio: float = 1.5,
                  prefixes: Sequence[str] | None = None) -> list[str]:
        """The best translation of each line, in input order, as `lstmnlp translate` (fp32);
        `prefixes`: the start each translation must have, as `--prefix`."""
        from lstmnlp.translation import translate_lines

        loaded = self.loaded
        if prefixes is not None and len(prefixes) != len(lines):
            raise ValueError(f"{len(prefixes)} prefixes for {len(lines)} lines")
        results = translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer, list(lines),
                                  beam_size=beam_size, batch_size=batch_size, alpha=length_penalty,
                                  max_length_ratio=max_length_ratio, prefixes=prefixes,
                                  max_source_length=4 * loaded.config.data.max_length)
        return [candidates[0][0] for candidates in results]

    def score_lines(self, sources: Sequence[str], references: Sequence[str]) -> list[dict]:
        """`lstmnlp score --input SOURCE --ref REFS --per-line`: how likely each reference is as
        the translation of its source (tokens, nll, nll_per_token, perplexity), in input order."""
        from lstmnlp.translation_scoring import score_translations

        loaded = self.loaded
        return score_translations(loaded.model, loaded.tokenizer, loaded.target_tokenizer, list(sources),
                                  list(references), max_source_length=4 * loaded.config.data.max_length)
