"""Write the in-domain text a sentiment LM is pretrained on (for `model.init_from` transfer).

    python recipes/build_sentiment_corpus.py ../shared/data OUT_DIR
    lstmnlp train recipes/lm-sentiment.yaml --data-dir OUT_DIR

OUT_DIR/input.txt: SST training sentences, MR snippets and Multi30k English captions, lower-cased,
one a line, shuffled. Every SST dev sentence is left out (also where MR holds the same snippet),
so the SST dev figure of a transferred classifier never saw its own text. MR's snippets are all
in: MR cross-validation after transfer is transductive for the LM (it read the unlabeled test
folds, as ULMFiT's LM fine-tuning reads the target task's text); the closing note says so.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lstmnlp.data import parse_sst_tree, read_lines  # noqa: E402


def sst_sentences(path: Path) -> list[str]:
    return [parse_sst_tree(line)[0][1].lower() for line in read_lines(path) if line.strip()]


def squash(text: str) -> str:
    """A key that ignores spacing differences between SST's and MR's tokenization."""
    return "".join(text.lower().split())


def main(data: Path, out: Path) -> None:
    dev = {squash(sentence) for sentence in sst_sentences(data / "sst" / "dev.txt")}
    lines = sst_sentences(data / "sst" / "train.txt")
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        lines += [line.strip().lower() for line in read_lines(data / "mr-polarity" / name) if line.strip()]
    lines += [line.strip().lower() for line in read_lines(data / "multi30k" / "train.en") if line.strip()]
    kept = [line for line in lines if squash(line) not in dev]
    random.Random(0).shuffle(kept)
    out.mkdir(parents=True, exist_ok=True)
    (out / "input.txt").write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"{out / 'input.txt'}: {len(kept):,} lines ({len(lines) - len(kept):,} SST dev sentences left out)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: build_sentiment_corpus.py DATA_DIR OUT_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
