"""NBSVM alone (`lstmnlp.nbsvm`, the n-gram model `model.nbsvm_ngrams` mixes into a classifier),
on the sentiment data the recipes use, to set beside the recipes' figures:

  mr    stratified 10-fold cross-validation on the folds `lstmnlp train recipes/mr.yaml --cv 10`
        makes (seed 1234), each fold fitted on the other nine; mean and spread of test accuracy.
  sst2  fitted on every labeled phrase of train.txt (neutral dropped), dev sentence accuracy.

    python benchmarks/nbsvm_baseline.py [--data-dir ../shared/data] [--ngrams 2] [--char-ngrams 4]
        [--task mr|sst2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from lstmnlp.classification_data import SST_LABELS, stratified_folds, unique_texts
from lstmnlp.data import read_label_files, read_sst
from lstmnlp.nbsvm import accuracy, fit_nbsvm


def fitted_accuracy(texts: list[str], labels: list[int], train: list[int], test: list[int], order: int,
                    char_order: int) -> float:
    """Accuracy in % on the `test` rows of an NBSVM fitted on the `train` rows."""
    model = fit_nbsvm([texts[i] for i in train], [labels[i] for i in train], 2, order=order, char_order=char_order)
    return accuracy(model.margins([texts[i] for i in test]), [labels[i] for i in test])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--ngrams", type=int, default=2)
    parser.add_argument("--char-ngrams", type=int, default=0, help="also character 2..N-grams (0: words only)")
    parser.add_argument("--task", choices=("mr", "sst2", "both"), default="both")
    args = parser.parse_args()
    started = time.perf_counter()
    grams = f"word 1-{args.ngrams}-grams" + (f", character 2-{args.char_ngrams}-grams" if args.char_ngrams else "")
    if args.task in ("mr", "both"):
        folder = args.data_dir / "mr-polarity"
        data = read_label_files({"positive": folder / "rt-polarity.pos", "negative": folder / "rt-polarity.neg"})
        labels = [int(label == "positive") for label in data.labels]
        folds = stratified_folds(data.labels, 10, 1234)
        scores = []
        for number, test in enumerate(folds, start=1):
            held = set(test)
            scores.append(fitted_accuracy(data.texts, labels, [i for i in range(len(labels)) if i not in held], test,
                                          args.ngrams, args.char_ngrams))
            print(f"MR fold {number}: {scores[-1]:.2f}%", flush=True)
        print(f"MR 10-fold NBSVM ({grams}): {statistics.mean(scores):.2f} "
              f"+- {statistics.stdev(scores):.2f}%")
    if args.task in ("sst2", "both"):
        folder = args.data_dir / "sst"
        train = unique_texts(read_sst(folder / "train.txt", label_names=SST_LABELS["binary"], phrases=True))
        dev = read_sst(folder / "dev.txt", label_names=SST_LABELS["binary"])
        texts = [text.lower() for text in train.texts + dev.texts]  # as recipes/sst2.yaml (data.lowercase)
        labels = [int(label == "positive") for label in train.labels + dev.labels]
        count = len(train.texts)
        score = fitted_accuracy(texts, labels, list(range(count)), list(range(count, len(texts))), args.ngrams,
                                args.char_ngrams)
        print(f"SST-2 dev NBSVM ({grams}, {count:,} training phrases): {score:.2f}%")
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
