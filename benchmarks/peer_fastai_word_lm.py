"""fastai's AWD-LSTM language model on Multi30k English, for a side-by-side word-LM comparison.

Run it in a separate venv that has fastai (see ../shared/PEERS.md for the install), never in
lstmnlp's own environment:

    FASTAI_PY benchmarks/peer_fastai_word_lm.py --data-dir ../shared/data/multi30k [--epochs 2]

Setup as in PEERS.md: vocabulary from train.en (min_freq 3), seq_len 72, bs 16, drop_mult 0.3,
fit_one_cycle lr_max 3e-3, GradientClip(0.1). Prints validation loss over fastai's own tokens and
the per-word perplexity (total validation NLL spread over whitespace words plus one per caption
break), the figure to compare with `lstmnlp score RUN --input val.en`'s perplexity_per_word.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    arguments = parser.parse_args()

    import pandas as pd
    import torch
    from fastai.callback.training import GradientClip
    from fastai.text.all import AWD_LSTM, TextDataLoaders, language_model_learner

    torch.set_num_threads(2)
    train = (arguments.data_dir / "train.en").read_text(encoding="utf-8").splitlines()
    valid = (arguments.data_dir / "val.en").read_text(encoding="utf-8").splitlines()
    frame = pd.DataFrame({"text": train + valid, "is_valid": [False] * len(train) + [True] * len(valid)})
    loaders = TextDataLoaders.from_df(frame, text_col="text", is_lm=True, valid_col="is_valid",
                                      seq_len=72, bs=16)
    learner = language_model_learner(loaders, AWD_LSTM, pretrained=False, drop_mult=0.3,
                                     cbs=[GradientClip(0.1)])
    parameters = sum(p.numel() for p in learner.model.parameters())
    started = time.perf_counter()
    learner.fit_one_cycle(arguments.epochs, 3e-3)
    seconds = time.perf_counter() - started
    valid_loss = float(learner.validate()[0])
    valid_tokens = sum(len(item[0]) for item in loaders.valid_ds)
    words = sum(len(line.split()) for line in valid) + len(valid)
    per_word = math.exp(valid_loss * valid_tokens / words)
    print(json.dumps({"peer": "fastai AWD_LSTM", "parameters": parameters, "vocab": len(loaders.vocab),
                      "train_seconds": round(seconds, 1), "valid_loss_own_tokens": valid_loss,
                      "perplexity_own_tokens": math.exp(valid_loss), "valid_tokens": valid_tokens,
                      "words_plus_breaks": words, "perplexity_per_word": per_word,
                      "tokens_per_s": None}))


if __name__ == "__main__":
    main()
