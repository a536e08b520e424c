"""Classification runs: training (with optional LM transfer), prediction and evaluation
(k-fold cross-validation: cross_validation.py).

The library functions behind `lstmnlp train` (task classify), `lstmnlp classify` and
`lstmnlp evaluate RUN_DIR --labels F`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from lstmnlp import checkpoint
from lstmnlp.classification_data import (Example, collate, encode_texts, hidden_labels, label_names, make_batches,
                                         train_and_valid, without_labels)
from lstmnlp.config import ExperimentConfig, dump_yaml
from lstmnlp.ensemble import classifier_labels, predict_ensemble
from lstmnlp.distributed import World, epoch_shard, main_then_others
from lstmnlp.data import LabeledData, LoadReport
from lstmnlp.device_batches import to_device
from lstmnlp.errors import UserError
from lstmnlp.metrics import ClassificationResult, classification_scores
from lstmnlp.models import build_model
from lstmnlp.nbsvm import NBSVM, accuracy, fit_nbsvm, mean_nll, mixed, pick_mix, pick_temperature
from lstmnlp.tokenizer import PAD_ID, Tokenizer, train_tokenizer
from lstmnlp.train import Reporter, Trainer, TrainResult, fit_run, start_training
from lstmnlp.transfer import check_compatible, copy_encoder, copy_language_model, thawing_schedule
from lstmnlp.word_vectors import apply_word_vectors


@dataclass
class ClassifierTrainSummary:
    run_dir: Path
    result: TrainResult
    parameters: int
    report: LoadReport
    sample: str
    labels: list[str]
    nbsvm: dict[str, float] | None = None  # validation figures of the mixed-in NBSVM


def prepare_tokenizer(config: ExperimentConfig, texts: Sequence[str], run_dir: Path) -> Tokenizer:
    """The run's tokenizer: the pretrained LM's (transfer), a given one, or one trained on `texts`."""
    target = run_dir / checkpoint.TOKENIZER
    source = None
    if config.model.init_from:
        source = Path(config.model.init_from) / checkpoint.TOKENIZER
        given = Path(config.tokenizer.path) if config.tokenizer.path else None
        if given is not None and Tokenizer(given).path.read_bytes() != source.read_bytes():
            raise UserError(f"tokenizer.path: {config.tokenizer.path} is not the tokenizer of model.init_from "
                            f"({source}); a transferred encoder needs its own tokenizer")
    elif config.tokenizer.path:
        source = Path(config.tokenizer.path)
    if source is not None:
        Tokenizer(source)  # checks it
        shutil.copyfile(source, target)
        return Tokenizer(target)
    with tempfile.TemporaryDirectory() as folder:
        text_file = Path(folder) / "train.txt"
        text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
        train_tokenizer([text_file], run_dir / "tokenizer", vocab_size=config.tokenizer.vocab_size,
                        model_type=config.tokenizer.model_type,
                        character_coverage=config.tokenizer.character_coverage,
                        byte_fallback=config.tokenizer.byte_fallback)
    return Tokenizer(target)


def to_examples(tokenizer: Tokenizer, labeled: LabeledData, labels: list[str], *, max_length: int) -> list[Example]:
    """Encoded examples; a label the training data lacks is an error naming it."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(labeled.labels) - set(index))
    if unknown:
        raise UserError(f"{labeled.report.source}: label {unknown[0]!r} does not occur in the training data "
                        f"(labels: {', '.join(labels)})")
    encoded = encode_texts(tokenizer, labeled.texts, max_length=max_length, report=labeled.report)
    return [(ids, index[label]) for ids, label in zip(encoded, labeled.labels)]


def transfer_from_language_model(config: ExperimentConfig, model) -> tuple[dict[int, float], Callable | None]:
    """Copy the LM (or sequence autoencoder) of `model.init_from` into the classifier's encoder;
    (LR scales, freezing schedule)."""
    pretrained = checkpoint.load_run(Path(config.model.init_from), expected_task=("lm", "autoencoder"))
    whole = pretrained.config.task == "autoencoder"
    check_compatible(pretrained.config.model, config.model, Path(config.model.init_from), whole=whole)
    if whole:
        groups = copy_encoder(pretrained.model.encoder, model.encoder)
    else:
        groups = copy_language_model(pretrained.model.encoder, model.encoder,
                                     backward=pretrained.config.model.backward)
    scales = {id(parameter): config.train.pretrained_lr_ratio for group in groups for parameter in group}
    frozen_at = thawing_schedule(groups, config.train.unfreeze_every) if config.train.unfreeze_every else None
    return scales, frozen_at


def train_classifier(config: ExperimentConfig, run_dir: Path, *, reporter: Reporter | None = None,
                     log: Callable[[str], None] = print,
                     data: tuple[LabeledData, LabeledData] | None = None,
                     resume: bool = False, world: World | None = None) -> ClassifierTrainSummary:
    """Train a classifier into `run_dir` (already created, empty; or a run to `resume`), on
    `data` or the recipe's files; with a distributed `world`, each rank trains on its shard."""
    world = world or World()
    device = start_training(config.train, rank=world.rank)
    train_data, valid_data = data or train_and_valid(config)
    labels = label_names(config, train_data.labels)
    hidden = hidden_labels(config)  # trained, never predicted (validation data never holds them: config.py)

    def prepare() -> Tokenizer:
        checkpoint.atomic_write_text(run_dir / checkpoint.CONFIG, dump_yaml(config))
        return (Tokenizer(run_dir / checkpoint.TOKENIZER) if resume
                else prepare_tokenizer(config, train_data.texts, run_dir))

    tokenizer = main_then_others(world, prepare, lambda: Tokenizer(run_dir / checkpoint.TOKENIZER))
    examples = to_examples(tokenizer, train_data, labels + hidden, max_length=config.data.max_length)
    valid_examples = to_examples(tokenizer, valid_data, labels, max_length=config.data.max_length)
    counts = torch.bincount(torch.tensor([label for _, label in examples]), minlength=len(labels) + len(hidden))
    log(f"data: {train_data.report.summary()}; {len(valid_examples):,} validation examples; "
        f"labels {', '.join(f'{name} ({int(n):,})' for name, n in zip(labels, counts))}"
        + "".join(f"; {name} ({int(n):,}, trained, never predicted)" for name, n in zip(hidden, counts[len(labels):]))
        + f"; vocabulary {tokenizer.vocab_size}")
    model = build_model(config, vocab_size=tokenizer.vocab_size, pad_id=PAD_ID, num_classes=len(labels),
                        hidden_classes=len(hidden))
    if config.model.class_weights:  # inverse frequency, mean 1 (classes absent from training get 1)
        weights = torch.where(counts > 0, counts.sum() / (len(counts) * counts.clamp(min=1)), torch.ones(1))
        model.class_weights.copy_(weights)
    if not resume:
        apply_word_vectors(config.model.word_vectors, model.encoder.embedding, tokenizer, log)
    scales, frozen_at = transfer_from_language_model(config, model) if config.model.init_from else ({}, None)
    model.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    meta = checkpoint.run_meta("classify", vocab_size=tokenizer.vocab_size, parameters=parameters,
                               labels=labels, data=train_data.report.summary(),
                               init_from=config.model.init_from or None)
    if hidden:
        meta["hidden_labels"] = hidden
    if world.is_main:
        checkpoint.write_meta(run_dir, meta)
    valid_batches = make_batches(valid_examples, config.train.batch_size)

    def train_batches(epoch: int):
        return epoch_shard(make_batches, epoch_examples(), config.train, epoch, world)

    def epoch_examples() -> list[Example]:
        """The training examples, segmented afresh each epoch under subword regularization."""
        if not config.tokenizer.sampling_alpha:
            return examples
        sampled = encode_texts(tokenizer, train_data.texts, max_length=config.data.max_length,
                               sampling_alpha=config.tokenizer.sampling_alpha)
        return [(ids, label) for ids, (_, label) in zip(sampled, examples)]

    def validate() -> dict[str, float]:
        return validation_metrics(model, valid_batches, labels, device)

    trainer = Trainer(model, config.train, run_dir, train_batches=train_batches, validate=validate,
                      metric="valid_accuracy", higher_is_better=True, reporter=reporter, device=device,
                      meta=meta, lr_scales=scales, frozen_at=frozen_at, world=world)
    result = fit_run(trainer, resume=resume)
    nbsvm, nbsvm_figures = None, None
    if config.model.nbsvm_ngrams and world.is_main:
        nbsvm_data = (without_labels(train_data, hidden), valid_data)  # NBSVM knows the labels alone
        nbsvm, nbsvm_figures = attach_nbsvm(run_dir, model, tokenizer, nbsvm_data, labels,
                                            order=config.model.nbsvm_ngrams,
                                            char_order=config.model.nbsvm_char_ngrams,
                                            refit=config.model.nbsvm_refit, max_length=config.data.max_length,
                                            log=log)
    sample_text = valid_data.texts[0]
    probabilities = predict(model, tokenizer, [sample_text], max_length=config.data.max_length)
    probabilities = (nbsvm.mix_into(probabilities, [sample_text]) if nbsvm else probabilities)[0]
    best = int(probabilities.argmax())
    sample = f"{sample_text}\n-> {labels[best]} ({float(probabilities[best]):.3f}; gold: {valid_data.labels[0]})"
    return ClassifierTrainSummary(run_dir, result, parameters, train_data.report, sample, labels, nbsvm_figures)


def attach_nbsvm(run_dir: Path, model, tokenizer: Tokenizer, data: tuple[LabeledData, LabeledData],
                 labels: list[str], *, order: int, char_order: int = 0, refit: bool = False, max_length: int,
                 log: Callable[[str], None] = print) -> tuple[NBSVM, dict[str, float]]:
    """Fit an NBSVM over word 1..`order`-grams (and character 2..`char_order`-grams) on the
    training texts, pick its mix weight with the trained model's validation probabilities, and keep
    it in the run; (it, its validation figures, which describe the NBSVM before any refit).
    With `refit`, the kept NBSVM is fitted again on the training and validation texts together, with
    the mix weight and temperature picked before: validation held out of the training data then
    teaches the n-gram model too (the BiLSTM still needs it to pick its checkpoint)."""
    train_data, valid_data = data
    index = {name: i for i, name in enumerate(labels)}

    def fit(texts: list[str], names: list[str]) -> NBSVM:
        return fit_nbsvm(texts, [index[name] for name in names], len(labels), order=order, char_order=char_order)

    nbsvm = fit(train_data.texts, train_data.labels)
    gold = [index[label] for label in valid_data.labels]
    probabilities = predict(model, tokenizer, valid_data.texts, max_length=max_length)
    margins = nbsvm.margins(valid_data.texts)
    nbsvm.mix, mixed_accuracy = pick_mix(probabilities, margins, gold)
    if nbsvm.mix:
        nbsvm.temperature, _ = pick_temperature(probabilities, margins, nbsvm.mix, gold)
    calibrated = mixed(probabilities, margins, nbsvm.mix, nbsvm.temperature)
    kept = nbsvm
    if refit:
        kept = fit(train_data.texts + valid_data.texts, train_data.labels + valid_data.labels)
        kept.mix, kept.temperature = nbsvm.mix, nbsvm.temperature
    kept.save(run_dir)
    figures = {"valid_accuracy_lstm": accuracy(probabilities, gold),
               "valid_accuracy_nbsvm": accuracy(margins, gold), "refit": float(refit), "mix": nbsvm.mix,
               "temperature": nbsvm.temperature, "valid_accuracy_mixed": mixed_accuracy,
               "valid_nll_lstm": mean_nll(probabilities, gold), "valid_nll_mixed": mean_nll(calibrated, gold)}
    checkpoint.write_meta(run_dir, {**checkpoint.read_meta(run_dir), "nbsvm": figures})
    grams = f"word 1-{order}-grams" + (f" and character 2-{char_order}-grams" if char_order else "")
    log(f"NBSVM over {grams} ({len(nbsvm.vocabulary):,}): validation accuracy "
        f"{figures['valid_accuracy_nbsvm']:.2f}% alone, {figures['valid_accuracy_lstm']:.2f}% for the BiLSTM, "
        f"{mixed_accuracy:.2f}% mixed with weight {nbsvm.mix:g} (temperature {nbsvm.temperature:.2f}; NLL "
        f"{figures['valid_nll_mixed']:.3f} vs {figures['valid_nll_lstm']:.3f})"
        + ("; then fitted again on training and validation texts" if refit else ""))
    return kept, figures


@torch.inference_mode()
def validation_metrics(model, batches, labels: list[str], device) -> dict[str, float]:
    model.eval()
    total, count, gold, predicted = 0.0, 0, [], []
    for batch in batches:
        batch = to_device(device)(batch)
        output = model.loss(batch)
        logits, _ = model(batch.ids, batch.lengths)
        total += float(output.total)
        count += int(output.count)
        gold.extend(batch.labels.tolist())
        predicted.extend(logits.argmax(dim=-1).tolist())
    scores = classification_scores(gold, predicted, labels)
    return {"valid_loss": total / max(count, 1), "valid_accuracy": scores.accuracy, "valid_macro_f1": scores.macro_f1}


@torch.inference_mode()
def predict(model, tokenizer: Tokenizer, texts: Sequence[str], *, max_length: int,
            batch_size: int = 64) -> torch.Tensor:
    """(N, C) class probabilities of `texts` as given (a run's casing is applied by the caller),
    in input order (empty texts are read as just <eos>)."""
    model.eval()
    device = next(model.parameters()).device
    encoded = encode_texts(tokenizer, texts, max_length=max_length)
    probabilities = torch.empty(len(texts), model.num_labels)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = collate([(encoded[i], 0) for i in rows])
        logits, _ = model(batch.ids.to(device), batch.lengths.to(device))
        probabilities[rows] = torch.softmax(logits.float(), dim=-1).cpu()
    return probabilities


def evaluate_run(runs: Sequence[checkpoint.LoadedRun], texts: Sequence[str],
                 gold_labels: Sequence[str], *, use_nbsvm: bool = True) -> ClassificationResult:
    """Accuracy, macro-F1 and confusion matrix on labeled texts of a run, or of an ensemble of
    runs (their probabilities averaged; NBSVMs mixed in unless `use_nbsvm` is False)."""
    labels = classifier_labels(runs)
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(gold_labels) - set(index))
    if unknown:
        raise UserError(f"label {unknown[0]!r} is not one of the run's labels ({', '.join(labels)})")
    probabilities = predict_ensemble(runs, texts, use_nbsvm=use_nbsvm)
    return classification_scores([index[label] for label in gold_labels], probabilities.argmax(-1).tolist(), labels)
