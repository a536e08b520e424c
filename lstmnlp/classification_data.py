"""Classification data: labeled files of every layout, stratified splits and folds, batches."""

from __future__ import annotations

import random
from typing import Sequence

import torch

from lstmnlp.batching import bucket_batches
from lstmnlp.config import ExperimentConfig
from lstmnlp.data import LabeledData, LoadReport, read_label_files, read_labeled, read_sst, resolve_data_dir
from lstmnlp.errors import UserError
from lstmnlp.models.classifier import ClassifierBatch
from lstmnlp.tokenizer import EOS_ID, PAD_ID, Tokenizer

SST_LABELS = {"binary": {0: "negative", 1: "negative", 3: "positive", 4: "positive"},
              "fine": {label: str(label) for label in range(5)}}
NEUTRAL = "neutral"  # data.neutral_phrases: SST's label 2, a class trained but never predicted
Example = tuple[list[int], int]  # (token ids, class index)


def read_split(config: ExperimentConfig, file_name: str, *, training: bool) -> LabeledData:
    """One labeled file (or, for `label_files`, the set of files) of the recipe's data folder."""
    data = config.data
    folder = resolve_data_dir(data.dir)
    if folder is None:
        raise UserError("classification reads local files: pass --data-dir DIR")
    if data.format == "sst":
        names = SST_LABELS[data.sst_labels] | ({2: NEUTRAL} if data.neutral_phrases and training else {})
        labeled = read_sst(folder / file_name, label_names=names, phrases=data.phrases and training)
        if data.phrases and training:
            labeled = unique_texts(labeled)
    elif data.format == "label_files":
        if not data.label_files:
            raise UserError("data.label_files: name the files, e.g. positive=rt-polarity.pos,negative=rt-polarity.neg")
        labeled = read_label_files({label.strip(): folder / name.strip() for label, name in
                                    (item.split("=") for item in data.label_files.split(","))})
    else:
        labeled = read_labeled(folder / file_name, text_column=data.text_column, label_column=data.label_column)
    if data.lowercase:
        labeled.texts = [text.lower() for text in labeled.texts]
    return labeled


def unique_texts(labeled: LabeledData) -> LabeledData:
    """Drop repeated texts (SST phrases recur across trees), keeping the first label."""
    seen: set[str] = set()
    texts, labels = [], []
    for text, label in zip(labeled.texts, labeled.labels):
        if text in seen:
            labeled.report.skip("repeated phrases")
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
    labeled.report.examples = len(texts)
    return LabeledData(texts, labels, labeled.report)


def label_names(config: ExperimentConfig, labels: Sequence[str]) -> list[str]:
    """Class names in a fixed order: SST's own order, else sorted."""
    if config.data.format == "sst":
        return list(dict.fromkeys(SST_LABELS[config.data.sst_labels].values()))
    return sorted(set(labels))


def hidden_labels(config: ExperimentConfig) -> list[str]:
    """Classes the model trains on but never predicts (data.neutral_phrases), after the labels."""
    return [NEUTRAL] if config.data.neutral_phrases else []


def without_labels(labeled: LabeledData, hidden: Sequence[str]) -> LabeledData:
    """`labeled` less the examples of the `hidden` labels."""
    kept = [i for i, label in enumerate(labeled.labels) if label not in hidden]
    return subset(labeled, kept, labeled.report.source)


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> list[list[int]]:
    """Indices in `folds` parts with each label spread evenly over them."""
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    offset = 0
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        for position, index in enumerate(indices):
            parts[(position + offset) % folds].append(index)
        offset += len(indices)
    return [sorted(part) for part in parts]


def subset(labeled: LabeledData, indices: Sequence[int], source: str) -> LabeledData:
    report = LoadReport(source, examples=len(indices))
    return LabeledData([labeled.texts[i] for i in indices], [labeled.labels[i] for i in indices], report)


def train_and_valid(config: ExperimentConfig) -> tuple[LabeledData, LabeledData]:
    """The training data and the validation data (a file, or a stratified held-out share)."""
    train = read_split(config, config.data.train, training=True)
    if config.data.valid:
        return train, read_split(config, config.data.valid, training=False)
    return hold_out(train, config.data.valid_fraction, config.train.seed)


def hold_out(labeled: LabeledData, fraction: float, seed: int) -> tuple[LabeledData, LabeledData]:
    """(the rest, a stratified `fraction` of the examples)."""
    parts = stratified_folds(labeled.labels, max(2, round(1 / fraction)), seed)
    held = set(parts[0])
    rest = [i for i in range(len(labeled.texts)) if i not in held]
    train = subset(labeled, rest, labeled.report.source)
    train.report.skipped = dict(labeled.report.skipped)
    return train, subset(labeled, parts[0], f"held-out {fraction:.0%} of {labeled.report.source}")


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], *, max_length: int,
                 report: LoadReport | None = None, sampling_alpha: float = 0.0) -> list[list[int]]:
    """Token ids + <eos> for each text, cut to `max_length` pieces (cuts counted in `report`);
    `sampling_alpha` > 0: sampled segmentations (subword regularization)."""
    encoded = []
    for ids in tokenizer.encode_batch(texts, sampling_alpha=sampling_alpha):
        if len(ids) > max_length:
            ids = ids[:max_length]
            if report is not None:
                report.skip(f"texts cut to {max_length} pieces (kept)")
        encoded.append(ids + [EOS_ID])
    return encoded


def collate(examples: Sequence[Example]) -> ClassifierBatch:
    longest = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), longest), PAD_ID, dtype=torch.long)
    for row, (token_ids, _) in enumerate(examples):
        ids[row, :len(token_ids)] = torch.tensor(token_ids)
    lengths = torch.tensor([len(token_ids) for token_ids, _ in examples])
    labels = torch.tensor([label for _, label in examples])
    return ClassifierBatch(ids, lengths, labels)


def make_batches(examples: Sequence[Example], batch_size: int, rng: random.Random | None = None, *,
                 max_tokens: int = 0) -> list[ClassifierBatch]:
    lengths = [len(ids) for ids, _ in examples]
    return [collate([examples[i] for i in batch]) for batch in bucket_batches(lengths, batch_size, rng,
                                                                                        max_tokens=max_tokens)]
