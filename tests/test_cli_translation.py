import json
import math

import pytest
import torch
from safetensors.torch import load_file

import lstmnlp

from conftest import ROOT, answers_at_terminal, assert_user_error, require_data, run_cli

TINY_MT = ["--set", "model.embedding_dim=16", "--set", "model.hidden_size=16", "--set", "model.num_layers=1",
           "--set", "model.decoder_hidden_size=32", "--set", "tokenizer.vocab_size=300",
           "--set", "train.batch_size=16", "--set", "train.max_steps=30", "--set", "train.eval_every=15",
           "--set", "train.max_time=0", "--set", "train.precision=fp32", "--set", "train.lr=0.005"]


@pytest.fixture(scope="module")
def multi30k_slice(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi30k")
    for split, count in (("train", 400), ("val", 24)):
        for language in ("de", "en"):
            lines = require_data(f"multi30k/{split}.{language}").read_text(encoding="utf-8").splitlines()
            (folder / f"{split}.{language}").write_text("\n".join(lines[:count]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_mt_run(tmp_path_factory, multi30k_slice):
    out = tmp_path_factory.mktemp("mt") / "run"
    result = run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(multi30k_slice),
                     "--out", str(out), *TINY_MT)
    assert result.returncode == 0, result.stderr + result.stdout
    return out


def test_training_writes_run_with_bleu(tiny_mt_run):
    records = [json.loads(line) for line in (tiny_mt_run / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["event"] == "valid"]
    assert [r["step"] for r in valid] == [15, 30]
    assert all("valid_bleu" in r and "valid_chrf" in r for r in valid)
    assert valid[-1]["valid_loss"] < valid[0]["valid_loss"]
    assert json.loads((tiny_mt_run / "meta.json").read_text())["task"] == "translate"


def test_subword_regularization_in_translation(tiny_mt_run, multi30k_slice, tmp_path):
    """The same run on the same tokenizer retraces the fixture's weights exactly; with
    tokenizer.sampling_alpha (both sides resegmented every epoch) it trains other weights."""
    trained = {}
    for alpha in ("0", "0.3"):
        out = tmp_path / f"alpha-{alpha}"
        result = run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(multi30k_slice),
                         "--out", str(out), *TINY_MT, "--set", f"tokenizer.path={tiny_mt_run / 'tokenizer.model'}",
                         "--set", f"tokenizer.sampling_alpha={alpha}")
        assert result.returncode == 0, result.stderr + result.stdout
        trained[alpha] = load_file(out / "last.safetensors")
    fixture = load_file(tiny_mt_run / "last.safetensors")
    assert all(torch.equal(trained["0"][key], fixture[key]) for key in fixture)
    assert not all(torch.equal(trained["0.3"][key], fixture[key]) for key in fixture)


def test_translate_keeps_order_and_empty_lines(tiny_mt_run):
    text = "Ein Mann fährt Fahrrad.\n\nZwei Hunde spielen im Schnee.\n"
    result = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", stdin=text)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    batch_one = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", "--batch-size", "1", stdin=text)
    assert batch_one.stdout == result.stdout


def test_translate_at_a_terminal_answers_each_line(tiny_mt_run):
    """Typed at a terminal, each sentence is translated at Enter (fairseq-interactive), as from a file."""
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    answers = answers_at_terminal("translate", str(tiny_mt_run), "--beam-size", "3", lines=sentences)
    piped = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", stdin="\n".join(sentences) + "\n")
    assert answers == piped.stdout.splitlines() and len(answers) == 2


def test_translate_no_repeat_ngram_size(tiny_mt_run, monkeypatch, tmp_path):
    """--no-repeat-ngram-size 1: no piece twice in any hypothesis (checked on the pieces beam
    search returns), where the tiny model's plain translations repeat words; through the CLI the
    translations change and repeat fewer words; a negative size is refused."""
    from lstmnlp import translation
    from lstmnlp.checkpoint import load_run

    text = "Ein Mann fährt Fahrrad.\nZwei Hunde spielen im Schnee auf der Wiese.\nEine Frau singt ein Lied.\n"
    found = []

    def recording_search(*args, **kwargs):
        hypotheses = beam_search(*args, **kwargs)
        found.extend(h.tokens for row in hypotheses for h in row)
        return hypotheses

    beam_search = translation.beam_search
    monkeypatch.setattr(translation, "beam_search", recording_search)
    loaded = load_run(tiny_mt_run, expected_task="translate")
    translation.translate_lines(loaded.model, loaded.tokenizer, loaded.target_tokenizer, text.splitlines(),
                                beam_size=3, nbest=3, no_repeat_ngram_size=1)
    assert len(found) == 9 and all(len(set(tokens)) == len(tokens) for tokens in found)

    def repeated_words(output):
        return sum(len(line.split()) - len(set(line.split())) for line in output.splitlines())

    plain = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", stdin=text)
    blocked = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", "--no-repeat-ngram-size", "1", stdin=text)
    assert blocked.returncode == 0, blocked.stderr
    assert len(blocked.stdout.splitlines()) == 3 and repeated_words(blocked.stdout) < repeated_words(plain.stdout)
    source, reference, hypotheses = tmp_path / "in.de", tmp_path / "ref.en", tmp_path / "hyp.en"
    source.write_text(text, encoding="utf-8")
    reference.write_text("A man rides a bike.\nTwo dogs play in the snow on the meadow.\nA woman sings a song.\n",
                         encoding="utf-8")
    hypotheses.write_text(blocked.stdout, encoding="utf-8")
    direct = run_cli("evaluate", str(tiny_mt_run), "--input", str(source), "--ref", str(reference), "--beam-size", "3",
                     "--no-repeat-ngram-size", "1", "--json")
    assert direct.returncode == 0, direct.stderr
    scored = run_cli("evaluate", "bleu", "--hyp", str(hypotheses), "--ref", str(reference), "--json")
    assert json.loads(direct.stdout) == json.loads(scored.stdout)  # evaluate blocks as translate does
    assert_user_error(run_cli("translate", str(tiny_mt_run), "--no-repeat-ngram-size", "-2", stdin=text),
                      "--no-repeat-ngram-size")


def test_translate_nbest_scores_and_files(tiny_mt_run, tmp_path):
    (tmp_path / "in.de").write_text("Ein Hund läuft.\nEine Frau singt.\n", encoding="utf-8")
    result = run_cli("translate", str(tiny_mt_run), "--input", str(tmp_path / "in.de"), "--output",
                     str(tmp_path / "out.en"), "--beam-size", "4", "--nbest", "2", "--scores")
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "out.en").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 4
    scores = [float(row.split("\t")[0]) for row in rows]
    assert all(score <= 0 for score in scores)


def test_translate_by_sampling(tiny_mt_run):
    """--temperature draws translations (--nbest of them a sentence, best first), repeatably
    with --seed; the sampling options without a temperature are refused."""
    text = "Ein Hund läuft.\nEine Frau singt.\nZwei Männer spielen Fußball.\n"
    options = ["--temperature", "1.0", "--nbest", "3", "--scores", "--length-penalty", "0"]
    first, again = (run_cli("translate", str(tiny_mt_run), *options, "--seed", "3", stdin=text) for _ in range(2))
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    rows = first.stdout.splitlines()
    assert len(rows) == 9
    for sentence in range(3):  # alpha 0: best first by summed log-probability
        scores = [float(row.split("\t")[0]) for row in rows[3 * sentence:3 * sentence + 3]]
        assert scores == sorted(scores, reverse=True) and all(score < 0 for score in scores)
    other = run_cli("translate", str(tiny_mt_run), *options, "--seed", "4", stdin=text)
    assert other.returncode == 0 and other.stdout != first.stdout
    assert_user_error(run_cli("translate", str(tiny_mt_run), "--top-k", "5", stdin=text), "set --temperature above 0")
    assert_user_error(run_cli("translate", str(tiny_mt_run), "--temperature", "-1", stdin=text), "--temperature")


def test_python_api_translates_as_the_command(tiny_mt_run):
    import lstmnlp

    lines = ["Ein Hund läuft.", "Eine Frau singt ein Lied.", "Zwei Männer spielen Fußball."]
    translated = run_cli("translate", str(tiny_mt_run), "--beam-size", "3", stdin="\n".join(lines) + "\n")
    assert lstmnlp.load(tiny_mt_run).translate(lines, beam_size=3) == translated.stdout.splitlines()


def test_save_attention_rows_sum_to_one(tiny_mt_run, tmp_path):
    result = run_cli("translate", str(tiny_mt_run), "--beam-size", "2", "--save-attention",
                     str(tmp_path / "attention.json"), stdin="Ein Mann fährt Fahrrad.\n")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "attention.json").read_text(encoding="utf-8"))[0]
    assert record["source"][-1] == "</s>" and len(record["weights"]) == len(record["target"])
    for row in record["weights"]:
        assert len(row) == len(record["source"]) and abs(sum(row) - 1) < 1e-3


def test_evaluate_bleu_and_run(tiny_mt_run, multi30k_slice, tmp_path):
    reference = multi30k_slice / "val.en"
    perfect = run_cli("evaluate", "bleu", "--hyp", str(reference), "--ref", str(reference), "--json")
    assert perfect.returncode == 0, perfect.stderr
    assert json.loads(perfect.stdout)["bleu"] == pytest.approx(100.0)
    plain = run_cli("evaluate", "bleu", "--hyp", str(reference), "--ref", str(reference))
    assert "nrefs:1" in plain.stdout and "BLEU" in plain.stdout
    scored = run_cli("evaluate", str(tiny_mt_run), "--input", str(multi30k_slice / "val.de"), "--ref",
                     str(reference), "--json", "--beam-size", "2")
    assert scored.returncode == 0, scored.stderr
    assert 0 <= json.loads(scored.stdout)["bleu"] < 100
    # `--precision fp32`: the BLEU of `translate --precision fp32`'s output
    source = multi30k_slice / "val.de"
    fp32 = run_cli("evaluate", str(tiny_mt_run), "--input", str(source), "--ref", str(reference), "--json",
                   "--beam-size", "2", "--precision", "fp32")
    translated = run_cli("translate", str(tiny_mt_run), "--input", str(source), "--output", str(tmp_path / "hyp.en"),
                         "--beam-size", "2", "--precision", "fp32")
    assert fp32.returncode == 0 and translated.returncode == 0, fp32.stderr + translated.stderr
    of_file = run_cli("evaluate", "bleu", "--hyp", str(tmp_path / "hyp.en"), "--ref", str(reference), "--json")
    assert json.loads(fp32.stdout) == json.loads(of_file.stdout)
    without_word = run_cli("evaluate", "--hyp", str(tmp_path / "hyp.en"), "--ref", str(reference), "--json")
    assert json.loads(without_word.stdout) == json.loads(of_file.stdout)  # files alone: `bleu` is implied
    assert_user_error(run_cli("evaluate", "--ref", str(reference)), "--hyp FILE and --ref FILE")
    assert_user_error(run_cli("evaluate", str(tiny_mt_run), "--input", str(source), "--ref", str(reference),
                              "--precision", "half"), "--precision")
    (tmp_path / "short.en").write_text("one line\n", encoding="utf-8")
    assert_user_error(run_cli("evaluate", "bleu", "--hyp", str(tmp_path / "short.en"), "--ref", str(reference)),
                      "references")


def test_score_references(tiny_mt_run, multi30k_slice, tmp_path, tiny_lm_run):
    """`score RUN --input SOURCE --ref REFS`: the corpus figures are the per-line ones summed; a
    line scores the same alone, among others and in another order; mistakes are one-line errors."""
    source, reference = multi30k_slice / "val.de", multi30k_slice / "val.en"
    corpus = run_cli("score", str(tiny_mt_run), "--input", str(source), "--ref", str(reference), "--json")
    assert corpus.returncode == 0, corpus.stderr
    total = json.loads(corpus.stdout)
    lines = [json.loads(line) for line in run_cli("score", str(tiny_mt_run), "--input", str(source), "--ref",
                                                  str(reference), "--per-line").stdout.splitlines()]
    references = reference.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(references) == 24
    assert total["tokens"] == sum(line["tokens"] for line in lines)
    assert total["words"] == sum(len(text.split()) + 1 for text in references)
    assert total["nll_per_token"] * total["tokens"] == pytest.approx(sum(line["nll"] for line in lines), rel=1e-6)
    assert total["perplexity"] == pytest.approx(math.exp(total["nll_per_token"]))
    import lstmnlp

    from_code = lstmnlp.load(tiny_mt_run).score_lines(source.read_text(encoding="utf-8").splitlines(), references)
    assert [line["nll"] for line in from_code] == pytest.approx([line["nll"] for line in lines], abs=1e-4)
    for name, rows in (("reversed", lambda lines: lines[::-1]), ("alone", lambda lines: lines[5:6])):
        for side in ("de", "en"):
            text = (multi30k_slice / f"val.{side}").read_text(encoding="utf-8").splitlines()
            (tmp_path / f"{name}.{side}").write_text("\n".join(rows(text)) + "\n", encoding="utf-8")
        again = run_cli("score", str(tiny_mt_run), "--input", str(tmp_path / f"{name}.de"), "--ref",
                        str(tmp_path / f"{name}.en"), "--per-line")
        assert [json.loads(line)["nll"] for line in again.stdout.splitlines()] == pytest.approx(
            [line["nll"] for line in rows(lines)], abs=1e-4)
    table = run_cli("score", str(tiny_mt_run), "--input", str(source), "--ref", str(reference))
    assert "perplexity per word" in table.stdout
    assert_user_error(run_cli("score", str(tiny_mt_run), "--input", str(source)), "--ref")
    assert_user_error(run_cli("score", str(tiny_mt_run), "--input", str(source), "--ref", str(tmp_path / "alone.en")),
                      "24 lines", "1")
    assert_user_error(run_cli("score", str(tiny_lm_run), "--input", str(source), "--ref", str(reference)),
                      "--ref is for translation runs")


def test_translate_rejects_language_model_run(tmp_path, tiny_lm_run):
    assert_user_error(run_cli("translate", str(tiny_lm_run), stdin="x\n"), "task 'lm'")


def test_parallel_files_of_different_lengths(tmp_path, multi30k_slice):
    for name in ("train.de", "train.en", "val.de", "val.en"):
        (tmp_path / name).write_bytes((multi30k_slice / name).read_bytes())
    (tmp_path / "train.en").write_text("only one line\n", encoding="utf-8")
    result = run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "run"))
    assert_user_error(result, "train.de has 400 lines", "train.en has 1")


def test_inspect_attention_picture(tiny_mt_run, tmp_path):
    out = tmp_path / "attention.png"
    result = run_cli("inspect", str(tiny_mt_run), "--text", "Ein Mann fährt Fahrrad.", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5_000
    assert "attention" in result.stdout and "->" in result.stdout


def test_translate_int8(tiny_mt_run):
    text = "Ein Mann fährt Fahrrad.\n\nZwei Hunde spielen im Schnee.\n"
    result = run_cli("translate", str(tiny_mt_run), "--quantize", "int8", stdin=text)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split("\n")) == 4 and "Warning" not in result.stderr
    assert_user_error(run_cli("translate", str(tiny_mt_run), "--quantize", "int4", stdin=text), "int8")


def test_translate_with_target_prefixes(tiny_mt_run, tmp_path):
    """`--prefix`: each translation begins with its line's prefix; a line without one translates
    as it does without the option; the API agrees; a misaligned file is a one-line error."""
    source, prefixes = tmp_path / "in.de", tmp_path / "prefix.en"
    lines = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau singt ein Lied."]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefixes.write_text("A woman\n\nThree cats\n", encoding="utf-8")
    for search in (["--beam-size", "3"], ["--beam-size", "1"], ["--temperature", "0.7", "--seed", "1"]):
        free = run_cli("translate", str(tiny_mt_run), "--input", str(source), *search)
        forced = run_cli("translate", str(tiny_mt_run), "--input", str(source), "--prefix", str(prefixes), *search)
        assert forced.returncode == 0, forced.stderr
        outputs, free_outputs = forced.stdout.splitlines(), free.stdout.splitlines()
        assert outputs[0].startswith("A woman") and outputs[2].startswith("Three cats")
        assert outputs[1] == free_outputs[1] or "--temperature" in search  # draws differ once others are forced
        assert outputs[0] != free_outputs[0] or free_outputs[0].startswith("A woman")
    translator = lstmnlp.load(tiny_mt_run)
    api = translator.translate(lines, beam_size=3, prefixes=["A woman", "", "Three cats"])
    cli = run_cli("translate", str(tiny_mt_run), "--input", str(source), "--prefix", str(prefixes),
                  "--beam-size", "3", "--precision", "fp32")
    assert api == cli.stdout.splitlines()
    (tmp_path / "short.en").write_text("A man\n", encoding="utf-8")
    assert_user_error(run_cli("translate", str(tiny_mt_run), "--input", str(source), "--prefix",
                              str(tmp_path / "short.en")), "--prefix")


def test_auto_precision_uses_bf16_only_for_batched_beam_search():
    from lstmnlp.cli_translate import decode_in_bf16
    from lstmnlp.precision import use_bf16
    cpu = torch.device("cpu")
    assert not decode_in_bf16("auto", 1, 64, cpu) and not decode_in_bf16("auto", 5, 1, cpu)
    assert decode_in_bf16("auto", 5, 64, cpu) == use_bf16("auto", cpu)
    assert not decode_in_bf16("fp32", 5, 64, cpu)
    if use_bf16("auto", cpu):  # explicit bf16 is refused on a CPU without native bf16
        assert decode_in_bf16("bf16", 1, 1, cpu)


def test_target_word_vectors_start_the_decoder_embedding(multi30k_slice, tmp_path):
    """model.target_word_vectors fills the decoder's rows from the file (a tiny learning rate keeps
    them there for two steps); the encoder's rows of the same joint pieces are left alone."""
    words = sorted(set((multi30k_slice / "train.en").read_text(encoding="utf-8").split()))
    generator = torch.Generator().manual_seed(0)
    vectors = {word: torch.randn(16, generator=generator) for word in words}
    path = tmp_path / "en-vectors.txt"
    path.write_text("".join(f"{word} {' '.join(f'{v:.6f}' for v in vector.tolist())}\n"
                            for word, vector in vectors.items()), encoding="utf-8")
    out = tmp_path / "run"
    result = run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(multi30k_slice),
                     "--out", str(out), *TINY_MT, "--set", "train.max_steps=2", "--set", "train.eval_every=2",
                     "--set", "train.lr=1e-9", "--set", f"model.target_word_vectors={path}")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "target word vectors: " in result.stdout
    from lstmnlp.tokenizer import Tokenizer

    tokenizer = Tokenizer(out / "tokenizer.model")
    weights = load_file(out / "model.safetensors")
    pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
    filled = [(i, piece[1:]) for i, piece in enumerate(pieces) if piece.startswith("\u2581") and piece[1:] in vectors]
    assert len(filled) > 20
    for piece_id, word in filled:
        assert torch.allclose(weights["decoder.embedding.weight"][piece_id].float(), vectors[word], atol=1e-4)
        assert not torch.allclose(weights["encoder.embedding.weight"][piece_id].float(), vectors[word], atol=1e-2)
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "multi30k-de-en.yaml"), "--data-dir", str(multi30k_slice),
                              "--out", str(tmp_path / "bad"), *TINY_MT, "--set", "model.target_word_vectors=nothing.txt"),
                      "model.target_word_vectors: nothing.txt: no such file")
