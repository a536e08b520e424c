"""lstmnlp against its peers, side by side on the same files, machine and training time.

Each peer is installed from PyPI into a scratch venv of its own (never into lstmnlp's
environment, never copied into the project); install notes in ../shared/PEERS.md.

  joeynmt  JoeyNMT 2.3.0's RNN (biLSTM 2x256, decoder LSTM 512, Bahdanau attention, input
           feeding, bridge, joint sentencepiece unigram 8k, embeddings 256, dropout 0.3, Adam
           1e-3, batch 64) and recipes/multi30k-de-en.yaml (the same sizes), each trained for
           --minutes on Multi30k de->en; then training target tokens/s, test2016 BLEU/chrF
           (beam 5, sacrebleu 13a) and the whole-process time to translate test2016 with beam 5
           and greedy search, batch 64.
  opennmt  OpenNMT-py 3.5.1 and lstmnlp on one RNN model (benchmarks/peer_opennmt.py): the
           same steps, training tokens/s, test2016 BLEU and whole-process decoding speed.
  fastai   fastai 2.8.12's AWD-LSTM language model (benchmarks/peer_fastai_word_lm.py) against
           recipes/word-lm-multi30k.yaml trained for the same time: per-word validation
           perplexity on val.en.

    python benchmarks/peers.py [--peer joeynmt|opennmt|fastai] [--minutes 10] [--work /tmp/peers]
        [--data ../shared/data] [--lstmnlp-set model.input_feeding=false ...]

Ratios are lstmnlp / peer for speeds; BLEU and perplexity are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TORCH = "torch==2.13.0"  # the CPU build; an unpinned torch would pull a CUDA build of several GB


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    print("  $ " + " ".join(str(part) for part in command), flush=True)
    return subprocess.run([str(part) for part in command], check=True, **options)


def timed(command: list[str], *, stdin: Path, stdout: Path, **options) -> float:
    """Whole-process seconds of `command` reading `stdin` and writing `stdout` (`options`: for
    subprocess.run)."""
    started = time.perf_counter()
    with stdin.open("rb") as source, stdout.open("wb") as target:
        run(command, stdin=source, stdout=target, **options)
    return time.perf_counter() - started


def make_venv(folder: Path, packages: list[list[str]]) -> Path:
    """A scratch venv with `packages` (pip argument lists, installed in order); reused if present."""
    python = folder / "bin/python"
    if not (folder / ".complete").is_file():
        run([PYTHON, "-m", "venv", folder])
        for arguments in packages:
            run([python, "-m", "pip", "install", "-q", *arguments])
        (folder / ".complete").write_text("ok\n")
    return python


def score(hypotheses: Path, references: Path) -> dict[str, float]:
    result = subprocess.run([PYTHON, "-m", "lstmnlp", "evaluate", "bleu", "--hyp", str(hypotheses),
                             "--ref", str(references), "--json"], check=True, capture_output=True, text=True)
    values = json.loads(result.stdout)
    return {"bleu": values["bleu"], "chrf": values["chrf"]}


# ---------------------------------------------------------------- JoeyNMT

def joeynmt_config(work: Path, data: Path, *, beam_size: int) -> dict:
    side = {"level": "bpe", "lowercase": False, "max_length": 80, "voc_file": str(work / "vocab.txt"),
            "tokenizer_type": "sentencepiece", "tokenizer_cfg": {"model_file": str(work / "spm.model")}}
    return {
        "name": "multi30k-de-en-rnn", "joeynmt_version": "2.3.0",
        "data": {"train": str(data / "train"), "dev": str(data / "val"), "test": str(data / "test2016"),
                 "dataset_type": "plain", "src": {"lang": "de", **side}, "trg": {"lang": "en", **side},
                 "sample_dev_subset": 200},
        "testing": {"load_model": str(work / "joeynmt-model/latest.ckpt"), "n_best": 1, "beam_size": beam_size,
                    "beam_alpha": 1.0, "batch_size": 64,
                    "batch_type": "sentence", "max_output_length": 100, "eval_metrics": ["bleu"],
                    "sacrebleu_cfg": {"tokenize": "13a"}},
        "training": {"random_seed": 42, "optimizer": "adam", "learning_rate": 0.001, "learning_rate_min": 1e-8,
                     "scheduling": "exponential", "decrease_factor": 1.0,  # constant: its plateau breaks on torch 2.13
                     "clip_grad_norm": 1.0, "batch_size": 64, "batch_type": "sentence", "normalization": "tokens",
                     "epochs": 1000, "validation_freq": 10**9, "logging_freq": 20, "eval_metric": ["bleu"],
                     "early_stopping_metric": "bleu", "model_dir": str(work / "joeynmt-model"), "overwrite": True,
                     "shuffle": True, "use_cuda": False, "print_valid_sents": [], "keep_best_ckpts": 1},
        "model": {"initializer": "xavier_uniform", "embed_initializer": "xavier_uniform", "bias_initializer": "zeros",
                  "init_rnn_orthogonal": False, "lstm_forget_gate": 1.0,
                  "encoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": {"embedding_dim": 256},
                              "hidden_size": 256, "bidirectional": True, "dropout": 0.3, "num_layers": 2},
                  "decoder": {"type": "recurrent", "rnn_type": "lstm", "embeddings": {"embedding_dim": 256},
                              "hidden_size": 512, "dropout": 0.3, "hidden_dropout": 0.3, "num_layers": 1,
                              "input_feeding": True, "init_hidden": "bridge", "attention": "bahdanau"}},
    }


def joeynmt_vocabulary(work: Path, data: Path) -> None:
    """Joint sentencepiece unigram 8k on train.de + train.en, and the piece list JoeyNMT reads."""
    import sentencepiece as spm
    if (work / "spm.model").is_file():
        return
    spm.SentencePieceTrainer.train(input=f"{data}/train.de,{data}/train.en", model_prefix=str(work / "spm"),
                                   vocab_size=8000, model_type="unigram", character_coverage=1.0,
                                   minloglevel=2)
    pieces = [line.split("\t")[0] for line in (work / "spm.vocab").read_text(encoding="utf-8").splitlines()]
    (work / "vocab.txt").write_text("\n".join(p for p in pieces if p not in ("<unk>", "<s>", "</s>")) + "\n",
                                    encoding="utf-8")


def train_for(command: list[str], seconds: float, log: Path) -> None:
    """Run a training command for `seconds`, then Ctrl-C it (JoeyNMT saves its weights then)."""
    print("  $ " + " ".join(map(str, command)) + f"  (stopped after {seconds:.0f} s)", flush=True)
    with log.open("w") as output:
        # A shell's background job ignores SIGINT, and a child would inherit that: restore it.
        process = subprocess.Popen([str(part) for part in command], stdout=output, stderr=subprocess.STDOUT,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=600)


def bench_joeynmt(args) -> dict[str, dict]:
    import yaml
    work, data = args.work / "joeynmt", args.data / "multi30k"
    work.mkdir(parents=True, exist_ok=True)
    python = make_venv(args.work / "venv-joeynmt", [[TORCH], ["joeynmt==2.3.0", "importlib_metadata",
                                                              "sentencepiece==0.2.0"]])
    joeynmt_vocabulary(work, data)
    for beam, name in ((5, "beam5.yaml"), (1, "greedy.yaml")):
        (work / name).write_text(yaml.safe_dump(joeynmt_config(work, data, beam_size=beam)), encoding="utf-8")
    train_for([python, "-m", "joeynmt", "train", work / "beam5.yaml", "--skip-test"], args.minutes * 60,
              work / "train.log")
    rates = [float(value) for value in re.findall(r"Tokens per Sec:\s+(\d+)", (work / "train.log").read_text())]
    results = {"train_target_tokens_per_s": sum(rates[2:]) / max(len(rates[2:]), 1)}
    for search, config in (("beam5", "beam5.yaml"), ("greedy", "greedy.yaml")):
        output = work / f"test2016.{search}.en"
        results[f"{search}_seconds"] = timed([python, "-m", "joeynmt", "translate", work / config],
                                             stdin=data / "test2016.de", stdout=output)
        results[f"{search}_score"] = score(output, data / "test2016.en")
        results[f"{search}_words"] = _words(output)
    theirs = results

    ours = train_and_translate_with_lstmnlp(args, "lstmnlp-de-en", args.lstmnlp_set)

    print(f"\nJoeyNMT 2.3.0 vs lstmnlp, Multi30k de->en, {args.minutes} min of training each "
          f"(lstmnlp overrides: {' '.join(args.lstmnlp_set) or 'none'})")
    print(f"{'figure':44} {'JoeyNMT':>12} {'lstmnlp':>12} {'ratio':>7}")
    _row("training target tokens/s", theirs["train_target_tokens_per_s"], ours["train_target_tokens_per_s"])
    for search in ("beam5", "greedy"):
        sentences = sum(1 for _ in (data / "test2016.de").open(encoding="utf-8"))
        _row(f"test2016 {search} sentences/s (whole process)", sentences / theirs[f"{search}_seconds"],
             sentences / ours[f"{search}_seconds"])
        _row(f"test2016 {search} output words/s", theirs[f"{search}_words"] / theirs[f"{search}_seconds"],
             ours[f"{search}_words"] / ours[f"{search}_seconds"])
        for metric in ("bleu", "chrf"):
            print(f"{'test2016 ' + search + ' ' + metric.upper():44} {theirs[f'{search}_score'][metric]:12.2f} "
                  f"{ours[f'{search}_score'][metric]:12.2f}")
    reference = _words(data / "test2016.en")
    for search in ("beam5", "greedy"):
        lengths = theirs[f"{search}_words"], ours[f"{search}_words"]
        print(f"test2016 {search} output words: JoeyNMT {lengths[0]:,}, lstmnlp {lengths[1]:,} (references {reference:,})")
        if max(lengths) > 1.25 * min(lengths):  # an undertrained model repeats itself up to the length limit
            print(f"  the {search} outputs differ in length by more than 25 %: their sentences/s are not comparable; "
                  "train longer (--minutes) for a fair decoding figure")
    return {"joeynmt": theirs, "lstmnlp": ours}


def train_and_translate_with_lstmnlp(args, name: str, settings: list[str]) -> dict:
    """recipes/multi30k-de-en.yaml with `settings` trained --minutes into WORK/name, then test2016
    translated with beam 5 and greedily (batch 64, whole processes timed) into WORK/name.test2016.*."""
    data, run_dir = args.data / "multi30k", args.work / name
    shutil.rmtree(run_dir, ignore_errors=True)  # a previous run of this benchmark (lstmnlp never overwrites)
    overrides = []
    for setting in (f"train.max_time={args.minutes * 60}", "train.eval_every=1000000000", *settings):
        overrides += ["--set", setting]
    started = time.perf_counter()
    run([PYTHON, "-m", "lstmnlp", "train", ROOT / "recipes/multi30k-de-en.yaml", "--data-dir", data,
         "--out", run_dir, *overrides], stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ours = {"train_seconds": time.perf_counter() - started, "steps": records[-1]["step"],
            "train_target_tokens_per_s": _mean([r["tokens_per_s"] for r in records if r["event"] == "train"][2:])}
    for search, beam in (("beam5", 5), ("greedy", 1)):
        output = args.work / f"{name}.test2016.{search}.en"
        ours[f"{search}_seconds"] = timed([PYTHON, "-m", "lstmnlp", "translate", run_dir, "--beam-size", beam,
                                           "--batch-size", 64], stdin=data / "test2016.de", stdout=output)
        ours[f"{search}_score"] = score(output, data / "test2016.en")
        ours[f"{search}_words"] = _words(output)
    return ours


def _words(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").split())


# ---------------------------------------------------------------- fastai

FASTAI_REQUIREMENTS = ["fastdownload<2", "fastcore>=2.2.22", "fasttransform>=0.0.3", "matplotlib", "pandas",
                       "requests", "pyyaml", "fastprogress>=0.2.4", "pillow>=9", "scikit-learn", "scipy",
                       "spacy<4", "packaging", "plum-dispatch<2.10", "cloudpickle"]


def bench_fastai(args) -> dict[str, dict]:
    folder = args.work / "venv-fastai"
    wheels = args.work / "fastai-wheel"
    constraint = args.work / "constraint.txt"
    constraint.parent.mkdir(parents=True, exist_ok=True)
    constraint.write_text(TORCH + "\n")
    if not (folder / ".complete").is_file():  # fastai's own pins pull torchvision; its text stack needs none
        run([PYTHON, "-m", "pip", "download", "-q", "--no-deps", "fastai==2.8.12", "-d", wheels])
    python = make_venv(folder, [[TORCH], ["--no-deps", *sorted(wheels.glob("fastai-*.whl"))],
                                ["-c", constraint, *FASTAI_REQUIREMENTS]])
    data = args.data / "multi30k"
    started = time.perf_counter()
    epochs = max(1, round(args.minutes * 60 / 340))  # about 340 s an epoch on 2 cores (PEERS.md)
    result = subprocess.run([str(python), str(ROOT / "benchmarks/peer_fastai_word_lm.py"), "--data-dir", str(data),
                             "--epochs", str(epochs)], check=True, capture_output=True, text=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = time.perf_counter() - started

    run_dir = args.work / "lstmnlp-word-lm"
    run([PYTHON, "-m", "lstmnlp", "train", ROOT / "recipes/word-lm-multi30k.yaml", "--data-dir", data,
         "--out", run_dir, "--set", f"train.max_time={round(seconds)}"], stdout=subprocess.DEVNULL)
    scored = subprocess.run([PYTHON, "-m", "lstmnlp", "score", str(run_dir), "--input", str(data / "val.en"),
                             "--json"], check=True, capture_output=True, text=True)
    ours = json.loads(scored.stdout)
    print(f"\nfastai 2.8.12 AWD-LSTM ({epochs} epochs, {seconds:.0f} s in all) vs lstmnlp word LM (same seconds)")
    print(f"{'figure':44} {'fastai':>12} {'lstmnlp':>12}")
    print(f"{'val.en perplexity per word':44} {theirs['perplexity_per_word']:12.1f} "
          f"{ours.get('perplexity_per_word', float('nan')):12.1f}")
    print(f"{'parameters':44} {theirs['parameters']:12,} {'':>12}")
    return {"fastai": theirs, "lstmnlp": ours}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _row(name: str, theirs: float, ours: float) -> None:
    print(f"{name:44} {theirs:12,.1f} {ours:12,.1f} {ours / theirs:6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=["joeynmt", "opennmt", "fastai", "all"], default="joeynmt")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time of each side")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lstmnlp-peers"), help="venvs, runs, outputs")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--lstmnlp-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra --set for the lstmnlp run, e.g. model.input_feeding=false")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs; work folder {args.work}")
    results = {}
    if args.peer in ("joeynmt", "all"):
        results.update(bench_joeynmt(args))
    if args.peer in ("opennmt", "all"):
        from peer_opennmt import bench_opennmt  # it imports this module's helpers

        results["opennmt-comparison"] = bench_opennmt(args)
    if args.peer in ("fastai", "all"):
        results["fastai-comparison"] = bench_fastai(args)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
