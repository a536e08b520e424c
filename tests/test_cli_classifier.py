"""Classification through the CLI, as a user runs it: train, classify, evaluate, --cv, transfer."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, answers_at_terminal, assert_user_error, require_data, run_cli

TINY_CLS = ["--set", "model.embedding_dim=16", "--set", "model.hidden_size=16", "--set", "tokenizer.vocab_size=400",
            "--set", "train.batch_size=16", "--set", "train.max_steps=40", "--set", "train.eval_every=20",
            "--set", "train.max_time=0", "--set", "train.precision=fp32", "--set", "train.lr=0.01",
            "--set", "train.ensemble=1"]


@pytest.fixture(scope="module")
def mr_slice(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mr")
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        lines = require_data(f"mr-polarity/{name}").read_text(encoding="utf-8").splitlines()
        (folder / name).write_text("\n".join(lines[:150]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory, sst_slice):
    out = tmp_path_factory.mktemp("cls") / "sst2"
    result = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                     "--set", "data.phrases=false", *TINY_CLS)
    assert result.returncode == 0, result.stderr + result.stdout
    return out


def test_training_keeps_label_names_and_accuracy(sst2_run):
    meta = json.loads((sst2_run / "meta.json").read_text())
    assert meta["task"] == "classify" and meta["labels"] == ["negative", "positive"]
    valid = [json.loads(line) for line in (sst2_run / "metrics.jsonl").read_text().splitlines()
             if '"valid"' in line]
    assert [r["step"] for r in valid] == [20, 40]
    assert all(0 <= r["valid_accuracy"] <= 100 and "valid_macro_f1" in r for r in valid)


def test_classify_keeps_order_and_json_probabilities(sst2_run, tmp_path):
    texts = "a masterpiece , moving and funny .\n\nthe worst film of the year .\nfine\n"
    plain = run_cli("classify", str(sst2_run), stdin=texts)
    assert plain.returncode == 0, plain.stderr
    labels = plain.stdout.splitlines()
    assert len(labels) == 4 and set(labels) <= {"negative", "positive"}
    rows = [json.loads(line) for line in run_cli("classify", str(sst2_run), "--json", stdin=texts).stdout.splitlines()]
    assert [row["label"] for row in rows] == labels
    for row in rows:
        assert set(row["probabilities"]) == {"negative", "positive"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
    # Each line is classified on its own: reversing the input reverses the output.
    reversed_text = "\n".join(reversed(texts.splitlines())) + "\n"
    backwards = run_cli("classify", str(sst2_run), "--batch-size", "1", stdin=reversed_text)
    assert backwards.stdout.splitlines() == list(reversed(labels))
    # A Windows file (byte-order mark, CRLF line ends), piped or named, reads as the same texts.
    windows = ("\ufeff" + texts.replace("\n", "\r\n")).encode("utf-8")
    piped = run_cli("classify", str(sst2_run), "--json", stdin=windows).stdout.splitlines()
    (tmp_path / "windows.txt").write_bytes(windows)
    named = run_cli("classify", str(sst2_run), "--json", "--input", str(tmp_path / "windows.txt")).stdout.splitlines()
    assert [json.loads(line) for line in piped] == [json.loads(line) for line in named] == rows
    typed = answers_at_terminal("classify", str(sst2_run), "--json", lines=texts.splitlines())
    assert [json.loads(answer)["label"] for answer in typed] == labels  # at a terminal: answered line by line


def test_evaluate_on_trees_and_on_label_file(sst2_run, sst_slice, tmp_path):
    trees = run_cli("evaluate", str(sst2_run), "--input", str(sst_slice / "dev.txt"), "--json")
    assert trees.returncode == 0, trees.stderr
    scores = json.loads(trees.stdout)
    assert 0 <= scores["accuracy"] <= 100 and scores["labels"] == ["negative", "positive"]
    texts, labels = tmp_path / "texts.txt", tmp_path / "labels.txt"
    texts.write_text("a great , great movie .\ndull and lifeless .\nsmart and touching .\n", encoding="utf-8")
    labels.write_text("positive\nnegative\npositive\n", encoding="utf-8")
    table = run_cli("evaluate", str(sst2_run), "--input", str(texts), "--labels", str(labels))
    assert table.returncode == 0, table.stderr
    assert "accuracy" in table.stdout and "confusion matrix" in table.stdout and "(3 examples)" in table.stdout
    labels.write_text("positive\nnegative\n", encoding="utf-8")
    assert_user_error(run_cli("evaluate", str(sst2_run), "--input", str(texts), "--labels", str(labels)),
                      "one label per text")
    labels.write_text("positive\nneutral\npositive\n", encoding="utf-8")
    assert_user_error(run_cli("evaluate", str(sst2_run), "--input", str(texts), "--labels", str(labels)),
                      "'neutral'")


def test_neutral_phrases_train_a_class_that_is_never_predicted(sst_slice, tmp_path):
    out = tmp_path / "neutral"
    trained = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                      *TINY_CLS, "--set", "data.neutral_phrases=true", "--set", "train.max_steps=10",
                      "--set", "model.nbsvm_ngrams=2")  # NBSVM fits on the negative and positive texts alone
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "trained, never predicted" in " ".join(trained.stdout.split())  # the console may wrap the line
    meta = json.loads((out / "meta.json").read_text())
    assert meta["labels"] == ["negative", "positive"] and meta["hidden_labels"] == ["neutral"]
    assert load_file(out / "model.safetensors")["head.weight"].shape[0] == 3  # the neutral output is trained
    rows = run_cli("classify", str(out), "--json", stdin="a film .\nthe worst film of the year .\n").stdout.splitlines()
    probabilities = [json.loads(row)["probabilities"] for row in rows]
    assert len(rows) == 2 and all(set(p) == {"negative", "positive"} for p in probabilities)
    assert all(abs(sum(p.values()) - 1) < 1e-4 for p in probabilities)
    evaluated = run_cli("evaluate", str(out), "--input", str(sst_slice / "dev.txt"), "--json")
    assert evaluated.returncode == 0 and 0 <= json.loads(evaluated.stdout)["accuracy"] <= 100, evaluated.stderr
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst5.yaml"), "--data-dir", str(sst_slice),
                              "--set", "data.neutral_phrases=true"), "data.neutral_phrases")
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--cv", "3",
                              "--set", "data.neutral_phrases=true", "--out", str(tmp_path / "cv")), "--cv")


def test_max_mean_pooling_through_the_cli(sst_slice, tmp_path):
    out = tmp_path / "max_mean"
    trained = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out", str(out),
                      "--set", "data.phrases=false", *TINY_CLS, "--set", "train.max_steps=10",
                      "--set", "model.pooling=max_mean")
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert load_file(out / "model.safetensors")["head.weight"].shape[1] == 2 * 2 * 16  # [max, mean] of both directions
    labels = run_cli("classify", str(out), stdin="a fine film .\nthe worst film .\n").stdout.split()
    assert len(labels) == 2 and set(labels) <= {"negative", "positive"}
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice),
                              "--set", "model.pooling=min"), "model.pooling")


def test_adversarial_training_through_the_cli(sst_slice, tmp_path):
    """model.adversarial trains other weights than the same run without it, and the run classifies."""
    weights = {}
    for share in ("0.1", "0"):
        out = tmp_path / f"adversarial-{share}"
        trained = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out",
                          str(out), "--set", "data.phrases=false", *TINY_CLS, "--set", "train.max_steps=10",
                          "--set", f"model.adversarial={share}")
        assert trained.returncode == 0, trained.stderr + trained.stdout
        weights[share] = load_file(out / "last.safetensors")
    assert not torch.equal(weights["0.1"]["head.weight"], weights["0"]["head.weight"])
    assert "adversarial: 0.1" in (tmp_path / "adversarial-0.1" / "config.yaml").read_text(encoding="utf-8")
    labels = run_cli("classify", str(tmp_path / "adversarial-0.1"), stdin="a fine film .\n").stdout.split()
    assert labels in (["negative"], ["positive"])

def test_sst5_phrases_and_cross_validation(sst_slice, mr_slice, tmp_path):
    sst5 = run_cli("train", str(ROOT / "recipes" / "sst5.yaml"), "--data-dir", str(sst_slice),
                   "--out", str(tmp_path / "sst5"), *TINY_CLS, "--set", "train.max_steps=10")
    assert sst5.returncode == 0, sst5.stderr + sst5.stdout
    assert "repeated phrases" in sst5.stdout  # every phrase of the trees, each once
    assert json.loads((tmp_path / "sst5" / "meta.json").read_text())["labels"] == ["0", "1", "2", "3", "4"]
    cv = run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice), "--cv", "3",
                 "--out", str(tmp_path / "mr"), *TINY_CLS, "--set", "train.max_steps=10", "--set", "train.eval_every=5")
    assert cv.returncode == 0, cv.stderr + cv.stdout
    summary = json.loads((tmp_path / "mr" / "cv.json").read_text())
    assert summary["folds"] == 3 and len(summary["accuracies"]) == 3
    assert summary["mean"] == pytest.approx(sum(summary["accuracies"]) / 3)
    assert "mean ± std" in cv.stdout
    assert all((tmp_path / "mr" / f"fold-0{k}" / "model.safetensors").is_file() for k in (1, 2, 3))


def test_stopped_cross_validation_resumes_to_the_same_accuracies(mr_slice, tmp_path):
    """SIGINT in fold 2 of 3, then --resume: fold 1 is kept, fold 2 resumes from its checkpoint,
    fold 3 is trained; the accuracies equal an uninterrupted run's."""
    import signal
    import subprocess
    import sys
    import time

    args = ["train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice), "--cv", "3", *TINY_CLS,
            "--set", "train.max_steps=150", "--set", "train.eval_every=10", "--set", "train.threads=1"]
    straight = run_cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    stopped = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "lstmnlp", *args, "--out", str(stopped)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (stopped / "fold-02" / "trainer_state.pt").is_file():
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--cv 3 --resume" in stderr and "fold 2 of 3" in stderr
    assert len(json.loads((stopped / "cv.json").read_text())["accuracies"]) == 1
    assert_user_error(run_cli("train", "--out", str(stopped), "--resume"), "--cv K --resume")
    assert_user_error(run_cli(*args, "--out", str(stopped), "--resume", "--cv", "4"), "--cv 3")
    resumed = run_cli("train", "--out", str(stopped), "--cv", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "fold 1/3: finished before" in resumed.stdout and "fold 2/3" in resumed.stdout
    expected = json.loads((tmp_path / "straight" / "cv.json").read_text())
    summary = json.loads((stopped / "cv.json").read_text())
    assert summary["accuracies"] == expected["accuracies"] and summary["mean"] == expected["mean"]


def test_transfer_from_language_model(mr_slice, tmp_path):
    corpus = tmp_path / "lm"
    corpus.mkdir()
    text = (mr_slice / "rt-polarity.pos").read_text() + (mr_slice / "rt-polarity.neg").read_text()
    (corpus / "input.txt").write_text(text, encoding="utf-8")
    lm = run_cli("train", str(ROOT / "recipes" / "word-lm-multi30k.yaml"), "--data-dir", str(corpus),
                 "--out", str(tmp_path / "lm-run"), "--set", "data.train=input.txt", "--set", "data.valid=",
                 "--set", "model.embedding_dim=16", "--set", "model.hidden_size=16", "--set", "model.num_layers=1",
                 "--set", "tokenizer.vocab_size=400", "--set", "train.batch_size=8", "--set", "train.bptt=16",
                 "--set", "train.max_steps=10", "--set", "train.eval_every=10", "--set", "train.max_time=0",
                 "--set", "train.eval_streams=2", "--set", "train.precision=fp32")
    assert lm.returncode == 0, lm.stderr + lm.stdout
    common = ["train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice), *TINY_CLS,
              "--set", "model.num_layers=1", "--set", "train.max_steps=10", "--set", "train.eval_every=5",
              "--set", f"model.init_from={tmp_path / 'lm-run'}"]
    result = run_cli(*common, "--out", str(tmp_path / "cls"), "--set", "train.unfreeze_every=4",
                     "--set", "train.pretrained_lr_ratio=0.5")
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / "cls" / "tokenizer.model").read_bytes() == (tmp_path / "lm-run" / "tokenizer.model").read_bytes()
    assert_user_error(run_cli(*common, "--out", str(tmp_path / "bad"), "--set", "model.hidden_size=24"),
                      "model.hidden_size=16")
    other = run_cli("tokenize", "train", str(mr_slice / "rt-polarity.pos"), "--prefix", str(tmp_path / "other"),
                    "--vocab-size", "300")
    assert other.returncode == 0, other.stderr
    assert_user_error(run_cli(*common, "--out", str(tmp_path / "bad2"), "--set", f"tokenizer.path={tmp_path / 'other.model'}"),
                      "is not the tokenizer of model.init_from")
    assert_user_error(run_cli(*common, "--out", str(tmp_path / "bad3"), "--set", f"tokenizer.path={tmp_path / 'nothing.model'}"),
                      "nothing.model")


def test_word_vectors_start_a_frozen_embedding(mr_slice, tmp_path):
    """model.word_vectors fills the rows of the words in the file; model.freeze_embeddings keeps them
    so through training (checked by value in the saved weights)."""
    words = sorted({word for name in ("rt-polarity.pos", "rt-polarity.neg")
                    for word in (mr_slice / name).read_text(encoding="utf-8").split()})
    generator = torch.Generator().manual_seed(0)
    vectors = {word: torch.randn(16, generator=generator) for word in words[::2]}  # every other word
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{word} {' '.join(f'{v:.6f}' for v in vector.tolist())}\n"
                            for word, vector in vectors.items()), encoding="utf-8")
    out = tmp_path / "cls"
    result = run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice), "--out", str(out),
                     *TINY_CLS, "--set", "tokenizer.model_type=word", "--set", "model.nbsvm_ngrams=0",
                     "--set", "model.nbsvm_char_ngrams=0", "--set", "model.nbsvm_refit=false",
                     "--set", f"model.word_vectors={path}", "--set", "model.freeze_embeddings=true")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "word vectors: " in result.stdout and "found in vectors.txt" in result.stdout
    from lstmnlp.tokenizer import Tokenizer

    tokenizer = Tokenizer(out / "tokenizer.model")
    weight = load_file(out / "model.safetensors")["encoder.embedding.weight"]
    filled = [(piece_id, tokenizer.id_to_piece(piece_id)[1:]) for piece_id in range(tokenizer.vocab_size)
              if tokenizer.id_to_piece(piece_id)[1:] in vectors]
    assert len(filled) > 100
    for piece_id, word in filled:
        assert torch.allclose(weight[piece_id].float(), vectors[word], atol=1e-5)
    # `lstmnlp embeddings` writes the learned table back out as a file model.word_vectors reads
    exported = tmp_path / "exported.txt"
    assert run_cli("embeddings", str(out), "--out", str(exported)).returncode == 0
    count, dimension = map(int, exported.read_text(encoding="utf-8").splitlines()[0].split())
    words = [piece for piece in map(tokenizer.id_to_piece, range(tokenizer.vocab_size)) if piece.startswith("\u2581")]
    assert (count, dimension) == (len(words), 16)
    from lstmnlp.word_vectors import fill_embedding

    refilled = torch.nn.Embedding(tokenizer.vocab_size, 16, padding_idx=0)
    assert fill_embedding(refilled, tokenizer, exported).found == count
    assert torch.allclose(refilled.weight[4:], weight[4:].float(), atol=1e-5)  # every row but the specials
    every_piece = run_cli("embeddings", str(out), "--pieces")
    assert every_piece.stdout.splitlines()[0] == f"{tokenizer.vocab_size - 1} 16"  # all but padding, on stdout
    assert_user_error(run_cli("embeddings", str(out), "--side", "target"), "--side target")
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice),
                              "--out", str(tmp_path / "bad"), *TINY_CLS, "--set", f"model.word_vectors={path}",
                              "--set", "model.embedding_dim=24"),
                      "16-dimensional vectors and model.embedding_dim is 24")
    assert list((tmp_path / "bad").iterdir()) == []  # no config or tokenizer left to block the next try there


def test_subword_regularization_changes_training(sst_slice, sst2_run, tmp_path):
    """tokenizer.sampling_alpha: sampled segmentations train other weights than the fixed one
    (same tokenizer, seed, steps and word dropout), and the run is an ordinary run."""
    weights = {}
    for alpha in ("0.3", "0"):
        out = tmp_path / f"alpha-{alpha}"
        result = run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--data-dir", str(sst_slice), "--out",
                         str(out), "--set", "data.phrases=false", *TINY_CLS, "--set", "train.max_steps=30",
                         "--set", f"tokenizer.path={sst2_run / 'tokenizer.model'}",
                         "--set", f"tokenizer.sampling_alpha={alpha}", "--set", "model.word_dropout=0.1")
        assert result.returncode == 0, result.stderr + result.stdout
        weights[alpha] = load_file(out / "last.safetensors")
    assert not all(torch.equal(weights["0.3"][key], weights["0"][key]) for key in weights["0"])
    classified = run_cli("classify", str(tmp_path / "alpha-0.3"), stdin="a gorgeous film\n")
    assert classified.returncode == 0 and classified.stdout.strip() in ("positive", "negative")


def test_python_api_classifies_as_the_command(sst2_run):
    import lstmnlp

    texts = ["a gripping , moving film", "dull and lifeless", "it is a movie"]
    classifier = lstmnlp.load(sst2_run)
    labelled = run_cli("classify", str(sst2_run), stdin="\n".join(texts) + "\n")
    assert classifier.classify(texts) == labelled.stdout.split()
    for probabilities in classifier.probabilities(texts):
        assert set(probabilities) == set(classifier.labels) and sum(probabilities.values()) == pytest.approx(1.0)


def test_classifier_commands_refuse_other_runs(tiny_lm_run):
    assert_user_error(run_cli("classify", str(tiny_lm_run), stdin="x\n"), "task 'lm'")
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"), "--cv", "3"), "--cv")


def test_inspect_classifier_token_weights(sst2_run, tmp_path):
    out = tmp_path / "weights.html"
    result = run_cli("inspect", str(sst2_run), "--text", "a gorgeous , witty film .", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "gradient saliency" in result.stdout and "predicted:" in result.stdout
    page = out.read_text(encoding="utf-8")
    assert page.count("<span") >= 7  # at least one piece per word, and </s>


def test_nbsvm_mixed_into_classifier(mr_slice, tmp_path):
    """model.nbsvm_ngrams: the run keeps an NBSVM whose margins `classify` mixes into the
    BiLSTM's probabilities with the weight picked on validation data; model.nbsvm_refit: that NBSVM
    is then fitted on the held-out validation texts as well."""
    from lstmnlp.checkpoint import load_run
    from lstmnlp.classification import predict
    from lstmnlp.data import read_label_files
    from lstmnlp.nbsvm import MIX_GRID, TEMPERATURE_GRID, load_nbsvm, mixed, text_ngrams

    out = tmp_path / "mr-nbsvm"
    result = run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(mr_slice), "--out", str(out),
                     *TINY_CLS, "--set", "train.max_steps=10", "--set", "train.eval_every=5",
                     "--set", "model.nbsvm_ngrams=2", "--set", "model.nbsvm_char_ngrams=3",
                     "--set", "model.nbsvm_refit=true")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "NBSVM over word 1-2-grams and character 2-3-grams" in result.stdout
    assert "fitted again on training and validation texts" in " ".join(result.stdout.split())  # wherever it wraps
    every_text = read_label_files({"positive": mr_slice / "rt-polarity.pos", "negative": mr_slice / "rt-polarity.neg"})
    every_gram = set().union(*(text_ngrams(text, 2, 3) for text in every_text.texts))
    assert set(load_nbsvm(out).vocabulary) == every_gram  # not only the training share's n-grams
    figures = json.loads((out / "meta.json").read_text())["nbsvm"]
    assert figures["refit"] == 1.0
    assert figures["mix"] in MIX_GRID
    assert figures["valid_accuracy_mixed"] >= figures["valid_accuracy_lstm"]  # mix 0 is among the choices
    assert figures["temperature"] in TEMPERATURE_GRID and (figures["mix"] or figures["temperature"] == 1.0)
    nbsvm = load_nbsvm(out)
    assert nbsvm.char_order == 3 and "\t th" in nbsvm.vocabulary  # the margins checked below read them
    nbsvm.mix = 4.0  # whatever the tiny run picked: a weight that changes the probabilities
    nbsvm.save(out)
    texts = ["a gorgeous , witty , seductive movie .", "the story is too thin and the acting dull .", "fine"]
    rows = [json.loads(line) for line in
            run_cli("classify", str(out), "--json", stdin="\n".join(texts) + "\n").stdout.splitlines()]
    loaded = load_run(out, expected_task="classify")
    expected = mixed(predict(loaded.model, loaded.tokenizer, texts, max_length=120), nbsvm.margins(texts), nbsvm.mix,
                     nbsvm.temperature)
    labels = loaded.meta["labels"]
    for row, probabilities in zip(rows, expected):
        assert [row["probabilities"][name] for name in labels] == pytest.approx(probabilities.tolist(), abs=1e-5)
    alone = [json.loads(line) for line in run_cli("classify", str(out), "--json", "--no-nbsvm",
                                                  stdin="\n".join(texts) + "\n").stdout.splitlines()]
    lstm = predict(loaded.model, loaded.tokenizer, texts, max_length=120)
    assert not torch.allclose(lstm, expected, atol=1e-3)
    for row, probabilities in zip(alone, lstm):  # the BiLSTM's own probabilities
        assert [row["probabilities"][name] for name in labels] == pytest.approx(probabilities.tolist(), abs=1e-5)
    gold = tmp_path / "gold.txt"
    gold.write_text("".join(labels[int(row.argmax())] + "\n" for row in lstm), encoding="utf-8")
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    evaluated = run_cli("evaluate", str(out), "--input", str(text_file), "--labels", str(gold), "--json", "--no-nbsvm")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["accuracy"] == 100.0  # gold = its own labels
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "char-lm-shakespeare.yaml"),
                              "--set", "model.nbsvm_ngrams=2"), "model.nbsvm_ngrams")
    assert_user_error(run_cli("train", str(ROOT / "recipes" / "sst2.yaml"), "--set", "model.nbsvm_ngrams=2",
                              "--set", "model.nbsvm_refit=true"), "model.nbsvm_refit", "data.valid")
    (out / "nbsvm.safetensors").unlink()  # as if training stopped before the fit
    assert_user_error(run_cli("classify", str(out), stdin="fine\n"), "--resume")
    assert run_cli("classify", str(out), "--no-nbsvm", stdin="fine\n").returncode == 0


def test_too_few_folds_refused_before_any_run_directory(tmp_path):
    for folds in ("1", "-2"):
        result = run_cli("train", str(ROOT / "recipes" / "mr.yaml"), "--cv", folds, "--out", str(tmp_path / "r"))
        assert_user_error(result, "--cv needs at least 2 folds")
        assert "run directory" not in result.stdout and not (tmp_path / "r").exists()
