import json
import shutil

import pytest

from conftest import ROOT, TINY_LM, assert_user_error, run_cli


def test_train_writes_a_complete_run(tiny_lm_run):
    for name in ("config.yaml", "tokenizer.model", "model.safetensors", "last.safetensors", "meta.json",
                 "metrics.jsonl", "trainer_state.pt"):
        assert (tiny_lm_run / name).is_file(), name
    records = [json.loads(line) for line in (tiny_lm_run / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        assert {"step", "elapsed_s", "train_loss", "tokens_per_s"} <= record.keys()
    valid = [r for r in records if r["event"] == "valid"]
    assert [r["step"] for r in valid] == [15, 30]
    assert valid[-1]["valid_loss"] < valid[0]["valid_loss"] < 4.2
    meta = json.loads((tiny_lm_run / "meta.json").read_text())
    assert meta["task"] == "lm" and meta["best_step"] in (15, 30)


def test_generate_is_reproducible_and_streams(tiny_lm_run):
    options = ["--prompt", "ROMEO:", "--max-tokens", "40", "--seed", "3"]
    first = run_cli("generate", str(tiny_lm_run), *options)
    second = run_cli("generate", str(tiny_lm_run), *options)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("ROMEO:") and len(first.stdout) >= 40
    other = run_cli("generate", str(tiny_lm_run), "--prompt", "ROMEO:", "--max-tokens", "40", "--seed", "4")
    assert other.stdout != first.stdout


def test_generate_without_a_seed_draws_afresh(tiny_lm_run):
    """No --seed: each run, each of --num-samples and each --input line's samples are new draws (a
    fresh torch.Generator starts from one fixed seed: every run gave the same text)."""
    options = ["--prompt", "ROMEO:", "--max-tokens", "40"]
    runs = [run_cli("generate", str(tiny_lm_run), *options).stdout for _ in range(2)]
    assert runs[0] != runs[1]
    both = run_cli("generate", str(tiny_lm_run), *options, "--num-samples", "2").stdout  # A\n, \n, B\n
    half = len(both) // 2
    assert both.startswith("ROMEO:") and not (len(both) % 2 == 1 and both[:half] == both[half + 1:])  # A != B
    completions = [run_cli("generate", str(tiny_lm_run), "--input", "-", "--max-tokens", "30", stdin="ROMEO:\n").stdout
                   for _ in range(2)]
    assert completions[0] != completions[1]


def test_generate_greedy_beam_topk_topp_and_samples(tiny_lm_run):
    greedy = run_cli("generate", str(tiny_lm_run), "--temperature", "0", "--max-tokens", "20")
    greedy_again = run_cli("generate", str(tiny_lm_run), "--temperature", "0", "--max-tokens", "20")
    assert greedy.returncode == 0 and greedy.stdout == greedy_again.stdout
    beam = run_cli("generate", str(tiny_lm_run), "--beam-size", "4", "--num-samples", "2", "--max-tokens", "15")
    assert beam.returncode == 0, beam.stderr
    assert len([block for block in beam.stdout.split("\n\n") if block.strip()]) >= 1
    filtered = run_cli("generate", str(tiny_lm_run), "--top-k", "5", "--top-p", "0.9", "--num-samples", "3",
                       "--max-tokens", "10", "--seed", "1")
    assert filtered.returncode == 0, filtered.stderr


def test_generate_lines(tiny_lm_run):
    """`--lines N`: the text is the one sampled without it, cut before its N-th line break;
    beam search with `--lines 1` writes the rest of one line."""
    options = ["--max-tokens", "400", "--seed", "2", "--prompt", "ROMEO:"]
    free = run_cli("generate", str(tiny_lm_run), *options).stdout
    assert free.count("\n") >= 4  # the tiny model breaks lines often enough
    for lines in (1, 3):
        cut = run_cli("generate", str(tiny_lm_run), *options, "--lines", str(lines))
        assert cut.returncode == 0, cut.stderr
        assert cut.stdout == "\n".join(free.split("\n")[:lines]) + "\n"
    beam = run_cli("generate", str(tiny_lm_run), "--beam-size", "3", "--num-samples", "2", "--lines", "1",
                   "--max-tokens", "60", "--prompt", "First Citizen:\nWe")
    assert beam.returncode == 0, beam.stderr
    texts = beam.stdout.rstrip("\n").split("\n\n")
    assert len(texts) == 2 and all(text.startswith("First Citizen:\nWe") and text.count("\n") == 1
                                   for text in texts)
    assert_user_error(run_cli("generate", str(tiny_lm_run), "--beam-size", "2", "--lines", "2"), "--lines")
    assert_user_error(run_cli("generate", str(tiny_lm_run), "--lines", "-1"), "--lines")


def test_generate_warns_on_unknown_prompt_characters(tiny_lm_run):
    result = run_cli("generate", str(tiny_lm_run), "--prompt", "Ωmega", "--max-tokens", "5", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "Ω" in result.stderr


def test_generate_defaults_to_latest_run(tiny_lm_run, tmp_path):
    shutil.copytree(tiny_lm_run, tmp_path / "runs" / "only")
    result = run_cli("generate", "--max-tokens", "5", "--seed", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("generate", cwd=tmp_path / "runs"), "no trained run found")


def test_score_json(tiny_lm_run, shakespeare_slice, tmp_path):
    text = (shakespeare_slice / "input.txt").read_text(encoding="utf-8")[:5000]
    (tmp_path / "part.txt").write_text(text, encoding="utf-8")
    result = run_cli("score", str(tiny_lm_run), "--input", str(tmp_path / "part.txt"), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["tokens"] == 5000  # one token per character, each predicted once
    assert 0 < scores["nll_per_token"] < 4.2
    assert abs(scores["bits_per_char"] - scores["nll_per_token"] / 0.6931471805599453) < 1e-9
    table = run_cli("score", str(tiny_lm_run), "--input", str(tmp_path / "part.txt"))
    assert "perplexity" in table.stdout


def test_generate_and_score_with_int8(tiny_lm_run, shakespeare_slice, tmp_path):
    options = ["--prompt", "ROMEO:", "--max-tokens", "30", "--seed", "3", "--quantize", "int8"]
    first, second = run_cli("generate", str(tiny_lm_run), *options), run_cli("generate", str(tiny_lm_run), *options)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.startswith("ROMEO:")
    (tmp_path / "part.txt").write_text((shakespeare_slice / "input.txt").read_text(encoding="utf-8")[:3000],
                                       encoding="utf-8")
    plain, int8 = (json.loads(run_cli("score", str(tiny_lm_run), "--input", str(tmp_path / "part.txt"), "--json",
                                      *extra).stdout) for extra in ([], ["--quantize", "int8"]))
    assert int8["tokens"] == plain["tokens"] and abs(int8["nll_per_token"] - plain["nll_per_token"]) < 0.05
    assert_user_error(run_cli("generate", str(tiny_lm_run), "--quantize", "int4"), "--quantize", "int8")


def test_bidirectional_language_model_refused(tmp_path, shakespeare_slice):
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir",
                     str(shakespeare_slice), "--out", str(tmp_path / "r"), "--set", "model.bidirectional=true")
    assert_user_error(result, "model.bidirectional", "must not see the future")
    assert not (tmp_path / "r").exists()


def test_existing_run_is_never_overwritten(tiny_lm_run, shakespeare_slice):
    before = (tiny_lm_run / "model.safetensors").read_bytes()
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir",
                     str(shakespeare_slice), "--out", str(tiny_lm_run), *TINY_LM)
    assert_user_error(result, "already holds a run")
    assert (tiny_lm_run / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("args, fragments", [
    (["--set", "model.hiden_size=3"], ["did you mean model.hidden_size"]),
    (["--set", "model.dropout=1.5"], ["model.dropout"]),
    (["--set", "model.hidden_size=-1"], ["model.hidden_size"]),
    (["--set", "model.nbsvm_char_ngrams=9"], ["model.nbsvm_char_ngrams", "2..8"]),
    (["--set", "model.nbsvm_char_ngrams=4"], ["model.nbsvm_char_ngrams", "model.nbsvm_ngrams"]),
    (["--set", "model.nbsvm_refit=true"], ["model.nbsvm_refit", "model.nbsvm_ngrams"]),
])
def test_train_bad_recipe_values(tmp_path, args, fragments):
    assert_user_error(run_cli("train", "--out", str(tmp_path / "r"), *args), *fragments)


def test_train_bad_data(tmp_path):
    (tmp_path / "input.txt").write_bytes(b"fine\n\xff\xfe bad\n")
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "r"))
    assert_user_error(result, "input.txt:2", "UTF-8")
    assert_user_error(run_cli("train", str(tmp_path / "missing.yaml")), "missing.yaml", "not found")
    # Without --out the run directory is named and made by the command; a failed start leaves none.
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir", str(tmp_path),
                     cwd=work)
    assert_user_error(result, "input.txt:2", "UTF-8")
    assert list((work / "runs").iterdir()) == []


def test_score_rejects_damaged_checkpoint(tiny_lm_run, tmp_path, shakespeare_slice):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_lm_run, damaged)
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    result = run_cli("score", str(damaged), "--input", str(shakespeare_slice / "input.txt"))
    assert_user_error(result, "model.safetensors")


def test_generate_no_repeat_ngram_size(tiny_lm_run):
    """--no-repeat-ngram-size: the tokens a character LM produces hold no trigram twice (checked on
    the ids: some of the tiny model's tokens print as nothing), where plain greedy output repeats;
    through the CLI the text changes and repeats less; a negative size is refused."""
    import torch

    from lstmnlp.checkpoint import load_run
    from lstmnlp.language_modeling import prime
    from lstmnlp.search import sample

    def repeats(items):
        grams = [tuple(items[i:i + 3]) for i in range(len(items) - 2)]
        return len(grams) - len(set(grams))

    loaded = load_run(tiny_lm_run, expected_task="lm")
    start, state = prime(loaded.model, loaded.tokenizer, "")
    plain_ids = sample(loaded.model.step, state, start, max_tokens=60, temperature=0)[0].tolist()
    assert repeats(plain_ids) > 0
    for temperature in (0.0, 1.0):
        start, state = prime(loaded.model, loaded.tokenizer, "")
        ids = sample(loaded.model.step, state, start, max_tokens=60, temperature=temperature,
                     no_repeat_ngram_size=3, generator=torch.Generator().manual_seed(0))[0].tolist()
        assert len(ids) == 60 and repeats(ids) == 0
    common = ["generate", str(tiny_lm_run), "--temperature", "0", "--max-tokens", "60"]
    plain = run_cli(*common).stdout
    blocked = run_cli(*common, "--no-repeat-ngram-size", "3")
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout != plain and repeats(blocked.stdout) < repeats(plain)
    beam = run_cli("generate", str(tiny_lm_run), "--beam-size", "3", "--max-tokens", "30", "--no-repeat-ngram-size", "3")
    assert beam.returncode == 0, beam.stderr
    assert_user_error(run_cli(*common, "--no-repeat-ngram-size", "-1"), "--no-repeat-ngram-size")


def test_backward_language_model_writes_what_comes_before(tiny_lm_run, shakespeare_slice, tmp_path):
    """A backward LM (model.backward) reads right to left: generate writes the text before the
    prompt, score reads the text from its end, and it will not average with a forward LM."""
    out = tmp_path / "backward"
    trained = run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--data-dir",
                      str(shakespeare_slice), "--out", str(out), *TINY_LM, "--set", "model.backward=true")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    sampled = run_cli("generate", str(out), "--prompt", "ROMEO:", "--max-tokens", "30", "--seed", "3")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.endswith("ROMEO:\n") and len(sampled.stdout) > 30
    beam = run_cli("generate", str(out), "--prompt", "KING", "--beam-size", "3", "--max-tokens", "12")
    assert beam.returncode == 0 and beam.stdout.endswith("KING\n"), beam.stderr
    text = (shakespeare_slice / "input.txt").read_text(encoding="utf-8")[:3000].rstrip("\n") + "\n"
    (tmp_path / "part.txt").write_text(text, encoding="utf-8")
    scores = [json.loads(run_cli("score", str(run), "--input", str(tmp_path / "part.txt"), "--json").stdout)
              for run in (out, tiny_lm_run)]
    assert scores[0]["tokens"] == scores[1]["tokens"] == len(text)  # each character predicted once
    assert 0 < scores[0]["nll_per_token"] < 4.2 and scores[0]["nll_per_token"] != scores[1]["nll_per_token"]
    assert_user_error(run_cli("score", str(out), str(tiny_lm_run), "--input", str(tmp_path / "part.txt")),
                      "opposite directions")
    assert_lines_score_alone(out, text.splitlines()[:6])


def assert_lines_score_alone(run_dir, lines):
    """score_lines batches lines of different lengths: each line's figure is score_text's for a
    text of that line alone (from a line break, its own line break included)."""
    from lstmnlp.checkpoint import load_run
    from lstmnlp.language_modeling import score_lines, score_text

    loaded = load_run(run_dir, expected_task="lm")
    backward = loaded.config.model.backward
    batched = score_lines(loaded.model, loaded.tokenizer, lines, backward=backward, batch_size=4)
    assert len({len(line) for line in lines}) > 1
    for line, scores in zip(lines, batched):
        alone = score_text(loaded.model, loaded.tokenizer, line + "\n", backward=backward)
        assert scores["tokens"] == alone.tokens == len(line) + 1
        assert abs(scores["nll_per_token"] - alone.nll_per_token) < 1e-4


def test_score_per_line(tiny_lm_run, tmp_path):
    lines = ["ROMEO:", "", "What light through yonder window breaks?", "It is the east."]
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("score", str(tiny_lm_run), "--input", str(tmp_path / "lines.txt"), "--per-line")
    assert result.returncode == 0, result.stderr
    scores = [json.loads(row) for row in result.stdout.splitlines()]
    assert [score["tokens"] for score in scores] == [len(line) + 1 for line in lines]  # input order
    assert all(score["nll"] > 0 and score["perplexity"] > 1 for score in scores)
    assert_lines_score_alone(tiny_lm_run, lines)


def test_python_api_matches_the_commands(tiny_lm_run, tmp_path):
    import lstmnlp
    from lstmnlp.errors import UserError

    lm = lstmnlp.load(tiny_lm_run)
    written = run_cli("generate", str(tiny_lm_run), "--prompt", "ROMEO:", "--max-tokens", "40", "--seed", "3").stdout
    assert "ROMEO:" + lm.generate("ROMEO:", max_tokens=40, seed=3) + "\n" == written
    text = "To be, or not to be: that is the question.\n"
    (tmp_path / "line.txt").write_text(text, encoding="utf-8")
    scored = json.loads(run_cli("score", str(tiny_lm_run), "--input", str(tmp_path / "line.txt"), "--json").stdout)
    assert lm.score(text) == pytest.approx(scored)
    assert lm.score_lines([text.strip()])[0]["tokens"] == len(text)
    with pytest.raises(UserError, match="not a trained run"):
        lstmnlp.load(tmp_path)
