"""Sequence autoencoders (task autoencoder): config checks, encoder transfer by value, and the
CLI path a user takes: train on text, reconstruct with `translate`, start a classifier from it."""

import pytest
import torch

from conftest import ROOT, assert_user_error, require_data, run_cli
from lstmnlp.config import ModelConfig, load_config
from lstmnlp.errors import UserError
from lstmnlp.models.classifier import TextClassifier
from lstmnlp.models.seq2seq import Seq2SeqModel
from lstmnlp.transfer import copy_encoder

RECIPE = ROOT / "recipes" / "autoencoder-sentiment.yaml"
TINY_AE = ["--set", "model.embedding_dim=16", "--set", "model.hidden_size=16", "--set", "tokenizer.vocab_size=400",
           "--set", "train.batch_size=16", "--set", "train.max_steps=20", "--set", "train.eval_every=10",
           "--set", "train.max_time=0", "--set", "train.precision=fp32", "--set", "train.eval_bleu_batches=1"]


def test_recipe_checks():
    assert load_config(RECIPE).task == "autoencoder"
    with pytest.raises(UserError, match="model.attention: an autoencoder"):
        load_config(RECIPE, ["model.attention=bahdanau", "model.input_feeding=false"])
    with pytest.raises(UserError, match="model.input_feeding: .* needs attention"):
        load_config(RECIPE, ["model.input_feeding=true"])
    with pytest.raises(UserError, match="tokenizer.joint"):
        load_config(RECIPE, ["tokenizer.joint=false"])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_copy_encoder_copies_every_direction_by_value(bidirectional):
    sizes = dict(embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.0, bidirectional=bidirectional)
    torch.manual_seed(0)
    autoencoder = Seq2SeqModel(ModelConfig(**sizes, attention="none", input_feeding=False),
                               source_vocab_size=20, target_vocab_size=20).eval()
    classifier = TextClassifier(ModelConfig(**sizes), vocab_size=20, num_classes=2).eval()
    groups = copy_encoder(autoencoder.encoder, classifier.encoder)
    for name, parameter in autoencoder.encoder.named_parameters():
        assert torch.equal(dict(classifier.encoder.named_parameters())[name], parameter), name
    ids = torch.randint(4, 20, (2, 5))
    lengths = torch.tensor([5, 3])
    torch.testing.assert_close(classifier.encoder(ids, lengths).outputs, autoencoder.encoder(ids, lengths).outputs)
    per_layer = 4 * (2 if bidirectional else 1)
    assert [len(group) for group in groups] == [per_layer, per_layer, 1]  # top layer first, embedding last


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ae-text")
    lines = require_data("mr-polarity/rt-polarity.pos").read_text(encoding="utf-8").splitlines()[:300]
    (folder / "input.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_train_reconstruct_and_transfer_through_the_cli(sentences, tmp_path):
    run = tmp_path / "ae"
    trained = run_cli("train", str(RECIPE), "--data-dir", str(sentences), "--out", str(run), *TINY_AE)
    assert trained.returncode == 0, trained.stderr + trained.stdout
    assert "valid_bleu" in trained.stdout and (run / "model.safetensors").is_file()
    lines = "a gripping , funny film .\n\nthe plot is thin\n"
    rebuilt = run_cli("translate", str(run), "--beam-size", "2", stdin=lines)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len(rebuilt.stdout.split("\n")) - 1 == 3 and rebuilt.stdout.split("\n")[1] == ""
    scored = run_cli("evaluate", str(run), "--input", str(sentences / "input.txt"), "--ref",
                     str(sentences / "input.txt"), "--json")
    assert scored.returncode == 0 and '"bleu"' in scored.stdout, scored.stderr
    assert_user_error(run_cli("inspect", str(run), "--text", "a film"), "no attention")

    labeled = tmp_path / "mr"
    labeled.mkdir()
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        text = require_data(f"mr-polarity/{name}").read_text(encoding="utf-8").splitlines()[:100]
        (labeled / name).write_text("\n".join(text) + "\n", encoding="utf-8")
    common = ["train", str(ROOT / "recipes" / "mr.yaml"), "--data-dir", str(labeled), "--set", "model.embedding_dim=16",
              "--set", "model.hidden_size=16", "--set", "train.batch_size=16", "--set", "train.max_steps=6",
              "--set", "train.eval_every=3", "--set", "train.max_time=0", "--set", "train.precision=fp32",
              "--set", f"model.init_from={run}"]
    classifier = run_cli(*common, "--out", str(tmp_path / "cls"), "--set", "train.unfreeze_every=2")
    assert classifier.returncode == 0, classifier.stderr + classifier.stdout
    assert (tmp_path / "cls" / "tokenizer.model").read_bytes() == (run / "tokenizer.model").read_bytes()
    assert_user_error(run_cli(*common, "--out", str(tmp_path / "bad"), "--set", "model.bidirectional=false"),
                      "model.bidirectional=True")


def test_validation_bleu_on_tokenized_text_is_quiet(capfd, caplog):
    """Autoencoders often read tokenized text (MR, SST): sacrebleu's warning about it is kept
    for `evaluate bleu` but not repeated at every validation; the score is the same."""
    from lstmnlp.metrics import bleu_and_chrf

    lines = [f"line {number} is tokenized ." for number in range(120)]
    hypotheses = [line.replace("is", "was") for line in lines]
    quiet = bleu_and_chrf(hypotheses, lines, warn_tokenized=False)
    assert "detokenize" not in capfd.readouterr().err + caplog.text
    loud = bleu_and_chrf(hypotheses, lines)
    assert "detokenize" in capfd.readouterr().err + caplog.text
    assert quiet.bleu == loud.bleu and quiet.bleu_signature == loud.bleu_signature
