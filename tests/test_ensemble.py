"""Ensembles: averaged probabilities in search (against exhaustive search) and in scoring, and
through the CLI: `train.ensemble`, several RUN_DIRs to classify/translate/evaluate/generate/score,
and the refusals."""

import itertools
import json
import math
import shutil

import pytest
import torch
import yaml

from lstmnlp.config import ModelConfig
from lstmnlp.ensemble import LanguageModelEnsemble, Seq2SeqEnsemble, average_log_probs
from lstmnlp.lm_data import evaluate_stream
from lstmnlp.models.language_model import LanguageModel, LanguageModelBatch
from lstmnlp.search import beam_search

from conftest import ROOT, TINY_LM, assert_user_error, require_data, run_cli
from test_cli_classifier import TINY_CLS
from test_cli_translation import TINY_MT
from test_seq2seq import BOS, EOS, PAIRS, encoded, exhaustive_best, restricted, tiny_model


def test_average_log_probs_is_the_log_of_the_mean_probability():
    torch.manual_seed(0)
    members = [torch.log_softmax(torch.randn(3, 7), -1) for _ in range(3)]
    expected = torch.log(sum(member.exp() for member in members) / 3)
    torch.testing.assert_close(average_log_probs(members), expected)
    torch.testing.assert_close(average_log_probs(members).exp().sum(-1), torch.ones(3))
    assert average_log_probs(members[:1]) is members[0]


def test_an_ensemble_of_one_model_twice_searches_as_the_model():
    model = tiny_model()
    ensemble = Seq2SeqEnsemble([model, model]).eval()
    state, starts = encoded(model, PAIRS)
    alone = beam_search(model.step, state, starts, beam_size=3, max_lengths=6, eos_id=EOS, alpha=1.0, nbest=2)
    ensemble_state, _ = encoded(ensemble, PAIRS)
    together = beam_search(ensemble.step, ensemble_state, starts, beam_size=3, max_lengths=6, eos_id=EOS,
                           alpha=1.0, nbest=2)
    for mine, theirs in zip(alone, together):
        assert [h.tokens for h in mine] == [h.tokens for h in theirs]
        assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-5)


def test_ensemble_beam_search_equals_exhaustive_search_over_averaged_probabilities():
    """Two different models; every hypothesis scored by running each member alone and averaging
    their probabilities token by token; a wide beam over the ensemble must find the best one.
    Only tokens 3-5 are allowed (the averaged distribution renormalized over them)."""
    members = [tiny_model(vocab=6), tiny_model(False, "luong", vocab=6)]
    ensemble = Seq2SeqEnsemble(members).eval()
    source = [([4, 5, 4], [5])]

    @torch.no_grad()
    def score(tokens, ended):
        states = [encoded(member, source)[0] for member in members]
        prev, total = torch.full((1,), BOS), 0.0
        for token in tokens + ([EOS] if ended else []):
            steps = [member.step(prev, state) for member, state in zip(members, states)]
            states = [state for _, state in steps]
            mean = [sum(math.exp(float(log_probs[0, t])) for log_probs, _ in steps) / 2 for t in range(6)]
            total += math.log(mean[token] / sum(mean[3:]))  # restricted to 3, 4, 5 as in the search
            prev = torch.tensor([token])
        return total

    max_len = 3
    best_score, best_tokens = exhaustive_best(score, max_len)
    state, starts = encoded(ensemble, source)
    found = beam_search(restricted(ensemble.step), state, starts, beam_size=20, max_lengths=max_len, eos_id=EOS)[0][0]
    assert found.tokens == best_tokens and abs(found.score - best_score) < 1e-5


def tiny_language_models(vocab: int = 9) -> list[LanguageModel]:
    """Two different small LMs (other seeds, one with tied weights)."""
    models = []
    for seed, tied in ((0, False), (1, True)):
        torch.manual_seed(seed)
        config = ModelConfig(embedding_dim=8, hidden_size=8 if tied else 12, num_layers=2, dropout=0.0,
                             tie_weights=tied)
        models.append(LanguageModel(config, vocab_size=vocab).eval())
    return models


@torch.no_grad()
def averaged_nll(members: list[LanguageModel], ids: torch.Tensor) -> float:
    """-sum log of the members' mean probability of each next token, each member run alone."""
    probs = [torch.softmax(member(ids[None, :-1])[0][0], dim=-1) for member in members]  # (T, V) each
    mean = sum(probs) / len(probs)
    return -float(mean.gather(1, ids[1:, None]).log().sum())


def test_language_model_ensemble_scores_the_mean_probability_across_windows():
    members = tiny_language_models()
    ensemble = LanguageModelEnsemble(members).eval()
    torch.manual_seed(2)
    ids = torch.randint(0, 9, (41,))
    expected = averaged_nll(members, ids)
    whole = ensemble.loss(LanguageModelBatch(ids[None, :-1], ids[None, 1:]))
    assert whole.total == pytest.approx(expected, rel=1e-5) and whole.count == 40
    total, count = evaluate_stream(ensemble, ids, bptt=7)  # the state carried from window to window
    assert (total, count) == (pytest.approx(expected, rel=1e-5), 40)
    alone = [evaluate_stream(member, ids, bptt=7)[0] for member in members]
    assert expected < sum(alone) / 2  # Jensen: the mixture beats the members' mean (strictly, as they differ)


@torch.no_grad()
def test_language_model_ensemble_steps_as_it_reads_and_beam_search_is_exact():
    members = tiny_language_models(vocab=4)
    ensemble = LanguageModelEnsemble(members).eval()
    prompt = torch.tensor([1, 2, 3])
    log_probs, _ = ensemble(prompt[None])
    state, stepped = ensemble.initial_state(1), []
    for token in prompt:
        step_log_probs, state = ensemble.step(token[None], state)
        stepped.append(step_log_probs[0])
    torch.testing.assert_close(torch.stack(stepped), log_probs[0])
    # every continuation of 3 tokens after the prompt, scored by the averaged probabilities
    best = max(itertools.product(range(4), repeat=3),
               key=lambda tokens: -averaged_nll(members, torch.tensor([1, 2, 3, *tokens])))
    _, primed = ensemble(prompt[None, :-1])
    found = beam_search(ensemble.step, primed, prompt[-1:], beam_size=16, max_lengths=3, eos_id=None)[0][0]
    assert tuple(found.tokens) == best
    continuation = averaged_nll(members, torch.tensor([1, 2, 3, *best])) - averaged_nll(members, prompt)
    assert found.score == pytest.approx(-continuation, rel=1e-5)


def test_language_model_ensemble_through_the_cli(shakespeare_slice, tmp_path):
    recipe = str(ROOT / "recipes" / "char-lm-shakespeare.yaml")
    (tmp_path / "runs").mkdir()
    out = tmp_path / "runs" / "lm-ensemble"
    trained = run_cli("train", recipe, "--data-dir", str(shakespeare_slice), "--out", str(out), *TINY_LM,
                      "--set", "train.ensemble=2")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    listing = json.loads((out / "ensemble.json").read_text())
    assert listing["members"] == ["member-1", "member-2"]
    # the same validation text and streams as each member's: the mixture scores below their mean
    assert listing["valid"]["valid_loss"] < sum(m["valid_loss"] for m in listing["member_valid"]) / 2
    text = shakespeare_slice / "input.txt"

    def nll(*runs: str) -> float:
        result = run_cli("score", *runs, "--input", str(text), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["nll_per_token"]

    together = nll(str(out))
    assert together == pytest.approx(nll(str(out / "member-1"), str(out / "member-2")), rel=1e-6)
    assert together < (nll(str(out / "member-1")) + nll(str(out / "member-2"))) / 2
    options = ["--prompt", "ROMEO:", "--max-tokens", "30", "--seed", "5"]
    first, again = run_cli("generate", str(out), *options), run_cli("generate", str(out), *options)
    assert first.returncode == 0 and first.stdout == again.stdout and first.stdout.startswith("ROMEO:")
    assert first.stdout != run_cli("generate", str(out / "member-1"), *options).stdout
    beam = run_cli("generate", str(out), "--beam-size", "3", "--max-tokens", "10", "--quantize", "int8")
    assert beam.returncode == 0 and beam.stdout.strip(), beam.stderr
    assert run_cli("generate", *options, cwd=tmp_path).stdout == first.stdout  # the latest run: the ensemble
    other_text = tmp_path / "lower"
    other_text.mkdir()
    (other_text / "input.txt").write_text(text.read_text(encoding="utf-8").lower(), encoding="utf-8")
    other = tmp_path / "other"
    assert run_cli("train", recipe, "--data-dir", str(other_text), "--out", str(other), *TINY_LM).returncode == 0
    assert_user_error(run_cli("score", str(out), str(other), "--input", str(text)), "vocabulary differs",
                      "tokenizer.path")


def test_classifier_ensemble_through_the_cli(sst_slice, tmp_path):
    out = tmp_path / "sst2x2"
    trained = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                      "--set", "data.phrases=false", *TINY_CLS, "--set", "train.max_steps=20", "--set",
                      "train.ensemble=2", "--set", "train.parallel_members=false")  # one after another
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "ensemble of 2" in trained.stdout
    listing = json.loads((out / "ensemble.json").read_text())
    assert listing["members"] == ["member-1", "member-2"] and "valid_accuracy" in listing["valid"]
    seeds = [yaml.safe_load((out / name / "config.yaml").read_text())["train"]["seed"] for name in listing["members"]]
    assert seeds[1] == seeds[0] + 1
    text = "a gorgeous , witty film\nthe plot is a mess\n"
    together = run_cli("classify", str(out), "--json", stdin=text)
    assert together.returncode == 0, together.stderr
    members = [run_cli("classify", str(out / name), "--json", stdin=text) for name in listing["members"]]
    for line, *member_lines in zip(together.stdout.splitlines(), *(m.stdout.splitlines() for m in members)):
        averaged = json.loads(line)["probabilities"]
        for label, probability in averaged.items():
            expected = sum(json.loads(m)["probabilities"][label] for m in member_lines) / 2
            assert probability == pytest.approx(expected, abs=2e-6)
    explicit = run_cli("classify", str(out / "member-1"), str(out / "member-2"), "--json", stdin=text)
    assert explicit.stdout == together.stdout
    scored = run_cli("evaluate", str(out), "--input", str(sst_slice / "dev.txt"), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["accuracy"] == pytest.approx(listing["valid"]["valid_accuracy"])
    other = tmp_path / "other-labels"
    shutil.copytree(out / "member-1", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(meta | {"labels": ["bad", "good"]}))
    assert_user_error(run_cli("classify", str(out), str(other), stdin=text), "labels")
    assert_user_error(run_cli("inspect", str(out), "--text", "a fine film"), "ensemble")
    plotted = run_cli("plot", str(out), "--out", str(tmp_path / "curves.png"))
    assert plotted.returncode == 0 and "of 2 run(s)" in plotted.stdout, plotted.stderr

    # --resume: finished members are kept as they are, a stopped one resumes, a larger N adds members.
    first_weights = (out / "member-1" / "model.safetensors").read_bytes()
    (out / "ensemble.json").write_text(json.dumps({"members": ["member-1"]}))  # as if killed after member-2's checkpoint
    grown = run_cli("train", "--out", str(out), "--resume", "--set", "train.ensemble=3")
    assert grown.returncode == 0, grown.stderr + grown.stdout
    assert "member 2/3 (seed 1235)" in grown.stdout and "(resuming)" in grown.stdout
    assert "member 1/3" not in grown.stdout
    assert (out / "member-1" / "model.safetensors").read_bytes() == first_weights
    assert json.loads((out / "ensemble.json").read_text())["members"] == ["member-1", "member-2", "member-3"]
    assert_user_error(run_cli("train", "--out", str(out), "--resume", "--set", "train.ensemble=1"), "an ensemble")
    assert_user_error(run_cli("train", "--out", str(out / "member-1"), "--resume", "--set", "train.ensemble=2"),
                      "a single run")


def test_cross_validation_with_ensembles(tmp_path):
    folder = tmp_path / "mr"
    folder.mkdir()
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        lines = require_data(f"mr-polarity/{name}").read_text(encoding="utf-8").splitlines()
        (folder / name).write_text("\n".join(lines[:60]) + "\n", encoding="utf-8")
    cv = run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(folder), "--cv", "2",
                 "--out", str(tmp_path / "cv"), *TINY_CLS, "--set", "train.max_steps=6", "--set", "train.eval_every=3",
                 "--set", "train.ensemble=2")
    assert cv.returncode == 0, cv.stderr + cv.stdout
    assert len(json.loads((tmp_path / "cv" / "cv.json").read_text())["accuracies"]) == 2
    for fold in ("fold-01", "fold-02"):
        assert json.loads((tmp_path / "cv" / fold / "ensemble.json").read_text())["members"] == ["member-1", "member-2"]


def test_translation_ensemble_through_the_cli(tmp_path):
    data = tmp_path / "m30"
    data.mkdir()
    for split, count in (("train", 300), ("val", 16)):
        for language in ("de", "en"):
            lines = require_data(f"multi30k/{split}.{language}").read_text(encoding="utf-8").splitlines()
            (data / f"{split}.{language}").write_text("\n".join(lines[:count]) + "\n", encoding="utf-8")
    recipe = str(ROOT / "recipes" / "multi30k-de-en.yaml")
    out = tmp_path / "mt"
    trained = run_cli("train", recipe, "--data-dir", str(data), "--out", str(out), *TINY_MT,
                      "--set", "train.max_steps=10", "--set", "train.eval_every=10", "--set", "train.ensemble=2")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert (out / "member-2" / "tokenizer.model").read_bytes() == (out / "member-1" / "tokenizer.model").read_bytes()
    assert "valid_bleu" in json.loads((out / "ensemble.json").read_text())["valid"]
    text = "Ein Mann fährt Fahrrad.\n\nZwei Hunde spielen im Schnee.\n"
    together = run_cli("translate", str(out), "--beam-size", "3", "--scores", stdin=text)
    assert together.returncode == 0, together.stderr
    assert len(together.stdout.split("\n")) == 4
    explicit = run_cli("translate", str(out / "member-1"), str(out / "member-2"), "--beam-size", "3", "--scores",
                       stdin=text)
    assert explicit.stdout == together.stdout
    single = run_cli("translate", str(out / "member-1"), "--beam-size", "3", "--scores", stdin=text)
    assert single.stdout != together.stdout  # the second member changes the scores
    other = tmp_path / "other"
    assert run_cli("train", recipe, "--data-dir", str(data), "--out", str(other), *TINY_MT,
                   "--set", "tokenizer.vocab_size=250", "--set", "train.max_steps=2",
                   "--set", "train.eval_every=2").returncode == 0
    assert_user_error(run_cli("translate", str(out), str(other), stdin=text), "vocabulary differs", "tokenizer.path")
    assert_user_error(run_cli("translate", str(out), "--save-attention", str(tmp_path / "a.json"), stdin=text),
                      "ensemble")


def test_ensembles_refused_where_they_cannot_work(tmp_path):
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--set", "train.ensemble=2",
                              "--set", "tokenizer.joint=false", "--set", "model.share_embeddings=false"),
                      "train.ensemble")
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--set", "train.ensemble=0"),
                      "train.ensemble")
