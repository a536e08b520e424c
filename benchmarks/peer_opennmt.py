"""OpenNMT-py 3.5.1 against lstmnlp on one RNN model, Multi30k de->en (`peers.py --peer opennmt`).

The model both train: joint sentencepiece unigram 8k, embeddings 256, biLSTM encoder 2 x 256 per
direction, LSTM decoder 2 x 512 (OpenNMT-py's decoder without input feeding takes the encoder's
final states, so its layers must equal the encoder's), Bahdanau ("mlp") attention after a fused
decoder LSTM, a bridge layer, no tied output matrix, dropout 0.3, label smoothing 0.1, Adam at a
constant 1e-3, clipping 1.0, batches of 64 sentences. lstmnlp trains `--minutes`
(recipes/multi30k-de-en.yaml with the overrides in SAME_MODEL); OpenNMT-py then trains as many
steps, so both see the same number of batches. Both translate test2016 with beam 5 (GNMT length penalty, alpha 1)
and greedy search, batch 64, timed as whole processes.

OpenNMT-py 3.5.1 pins torch<2.3, which PyPI serves only as a CUDA build of several GB; it is
installed without its dependencies next to torch 2.13's CPU build, with the modules it imports
(it ran unchanged on torch 2.13). Its input is pre-cut into the pieces of the same sentencepiece
model, and its output pieces are joined back into text here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import time

from peers import TORCH, make_venv, run, score, timed, train_and_translate_with_lstmnlp, _mean, _row, _words

OPENNMT = "OpenNMT-py==3.5.1"
# What it imports at start-up (its pinned requirements would pull a CUDA torch)
OPENNMT_IMPORTS = ["configargparse", "pyyaml", "sacrebleu", "six", "sentencepiece==0.2.0", "pyonmttok", "spacy",
                   "rapidfuzz", "pyahocorasick", "fasttext-wheel"]
# the same model, and OpenNMT-py's constant learning rate without warmup (the recipe warms up
# 200 steps and decays over its time budget: tuned for an hour, not for minutes)
SAME_MODEL = ["model.decoder_layers=2", "model.tie_weights=false", "train.schedule=constant", "train.warmup_steps=0"]


def opennmt_config(work: Path, steps: int) -> dict:
    return {
        "save_data": str(work / "data"), "src_vocab": str(work / "vocab.txt"), "share_vocab": True,
        "overwrite": True, "data": {"corpus_1": {"path_src": str(work / "train.de.sp"),
                                                 "path_tgt": str(work / "train.en.sp")}},
        "src_seq_length": 80, "tgt_seq_length": 80,
        "encoder_type": "brnn", "decoder_type": "rnn", "rnn_type": "LSTM", "enc_layers": 2, "dec_layers": 2,
        "enc_hid_size": 512, "dec_hid_size": 512, "word_vec_size": 256, "global_attention": "mlp",
        "input_feed": 0, "bridge": True, "dropout": [0.3], "label_smoothing": 0.1,
        "optim": "adam", "learning_rate": 0.001, "max_grad_norm": 1.0, "param_init_glorot": True, "param_init": 0,
        "batch_size": 64, "batch_type": "sents", "train_steps": steps, "save_checkpoint_steps": steps,
        "valid_steps": 10**9, "save_model": str(work / "model"), "report_every": 50, "seed": 1234,
        "num_workers": 0,
    }


def cut_into_pieces(work: Path, data: Path, spm_model: Path) -> None:
    """The corpus as space-separated pieces of `spm_model`, and the piece list OpenNMT-py reads."""
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(spm_model))
    for split in ("train", "test2016"):
        for language in ("de", "en"):
            lines = (data / f"{split}.{language}").read_text(encoding="utf-8").splitlines()
            pieces = processor.encode(lines, out_type=str)
            (work / f"{split}.{language}.sp").write_text("".join(" ".join(p) + "\n" for p in pieces),
                                                         encoding="utf-8")
    vocabulary = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    # OpenNMT-py adds its own specials, and splits its vocabulary lines at any whitespace
    usable = [piece for piece in vocabulary if piece not in ("<unk>", "<s>", "</s>", "<pad>") and piece.split() == [piece]]
    (work / "vocab.txt").write_text("".join(f"{piece}\t1\n" for piece in usable), encoding="utf-8")


def bench_opennmt(args) -> dict[str, dict]:
    import yaml

    work, data = args.work / "opennmt", args.data / "multi30k"
    work.mkdir(parents=True, exist_ok=True)
    venv = make_venv(args.work / "venv-opennmt", [[TORCH], ["--no-deps", OPENNMT], OPENNMT_IMPORTS]).parent
    sentences = sum(1 for _ in (data / "test2016.de").open(encoding="utf-8"))

    name = "lstmnlp-de-en-same-as-opennmt"
    ours = train_and_translate_with_lstmnlp(args, name, SAME_MODEL + args.lstmnlp_set)
    steps = ours["steps"]  # the final record: validation at the last step

    cut_into_pieces(work, data, args.work / name / "tokenizer.model")
    (work / "config.yaml").write_text(yaml.safe_dump(opennmt_config(work, steps)), encoding="utf-8")
    log = work / "train.log"
    started = time.perf_counter()
    with log.open("w") as output:
        run([venv / "onmt_train", "-config", work / "config.yaml"], stdout=output, stderr=subprocess.STDOUT)
    # its report lines: "...; 491/500 tok/s; ..." (source/target tokens a second)
    rates = [float(target) for _, target in re.findall(r"(\d+)/\s*(\d+) tok/s", log.read_text())]
    theirs = {"steps": steps, "train_seconds": time.perf_counter() - started,
              "train_target_tokens_per_s": _mean(rates[2:])}
    model = work / f"model_step_{steps}.pt"
    # its checkpoints pickle an argparse.Namespace, which torch >= 2.6 loads only when told to;
    # this one it wrote itself a moment ago
    trusted_checkpoints = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    for search, beam in (("beam5", 5), ("greedy", 1)):
        pieces, output = work / f"test2016.{search}.sp", work / f"test2016.{search}.en"
        seconds = timed([venv / "onmt_translate", "-model", model, "-src", work / "test2016.de.sp", "-output", pieces,
                         "-beam_size", beam, "-batch_size", 64, "-batch_type", "sents", "-length_penalty", "wu",
                         "-alpha", 1.0, "-max_length", 100], stdin=Path("/dev/null"), stdout=work / "translate.log",
                        env=trusted_checkpoints)
        theirs[f"{search}_seconds"] = seconds
        output.write_text("".join(line.replace(" ", "").replace("\u2581", " ").strip() + "\n"
                                  for line in pieces.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
        theirs[f"{search}_score"] = score(output, data / "test2016.en")
        theirs[f"{search}_words"] = _words(output)

    print(f"\nOpenNMT-py 3.5.1 vs lstmnlp, the same RNN model, Multi30k de->en, {steps:,} steps of 64 sentences each "
          f"(lstmnlp: {args.minutes} min; overrides: {' '.join(SAME_MODEL + args.lstmnlp_set)})")
    print(f"{'figure':44} {'OpenNMT-py':>12} {'lstmnlp':>12} {'ratio':>7}")
    _row("training target tokens/s", theirs["train_target_tokens_per_s"], ours["train_target_tokens_per_s"])
    _row("training processes' steps/s (whole process)", steps / theirs["train_seconds"],
         steps / ours["train_seconds"])
    for search in ("beam5", "greedy"):
        _row(f"test2016 {search} sentences/s (whole process)", sentences / theirs[f"{search}_seconds"],
             sentences / ours[f"{search}_seconds"])
        for metric in ("bleu", "chrf"):
            print(f"{'test2016 ' + search + ' ' + metric.upper():44} {theirs[f'{search}_score'][metric]:12.2f} "
                  f"{ours[f'{search}_score'][metric]:12.2f}")
        print(f"{'test2016 ' + search + ' output words':44} {theirs[f'{search}_words']:12,} {ours[f'{search}_words']:12,}")
    return {"opennmt": theirs, "lstmnlp": ours}

