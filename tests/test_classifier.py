"""Unit tests of the classifier pieces: pooling masks, overfitting, transfer, folds, scores."""

from pathlib import Path

import pytest
import torch

from conftest import overfit
from lstmnlp.classification_data import stratified_folds
from lstmnlp.config import ModelConfig
from lstmnlp.metrics import classification_scores
from lstmnlp.models.adversarial import adversarial_offset, probe_like
from lstmnlp.models.classifier import ClassifierBatch, TextClassifier
from lstmnlp.models.language_model import LanguageModel
from lstmnlp.modules.encoder import EncoderOutput
from lstmnlp.modules.pooling import SequencePooling
from lstmnlp.errors import UserError
from lstmnlp.transfer import check_compatible, copy_language_model, thawing_schedule

SMALL = dict(embedding_dim=8, hidden_size=12, num_layers=2, dropout=0.0)


def make_classifier(pooling="max", bidirectional=True, classes=3, hidden_classes=0, **options):
    torch.manual_seed(0)
    config = ModelConfig(**{**SMALL, **options}, bidirectional=bidirectional, pooling=pooling)
    return TextClassifier(config, vocab_size=20, num_classes=classes, hidden_classes=hidden_classes).eval()


@pytest.mark.parametrize("pooling", ["max", "mean", "max_mean", "last", "attention"])
def test_pooling_ignores_padding(pooling):
    model = make_classifier(pooling, classifier_hidden=7)
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [4, 9, 9, 9, 9, 3]])
    alone, _ = model(short, torch.tensor([3]))
    together, weights = model(padded, torch.tensor([3, 6]))
    torch.testing.assert_close(alone[0], together[0], atol=1e-6, rtol=1e-5)
    if pooling == "attention":
        assert torch.all(weights[0, 3:] == 0) and torch.allclose(weights.sum(1), torch.ones(2))


def test_max_mean_pooling_is_max_and_mean_side_by_side():
    outputs = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [9.0, 9.0]]])  # (1, 3, 2); the last step is padding
    mask = torch.tensor([[True, True, False]])
    encoded = EncoderOutput(outputs, None)
    pooled, _ = SequencePooling("max_mean", 2, 2)(encoded, mask)
    torch.testing.assert_close(pooled, torch.tensor([[3.0, 0.0, 2.0, -1.0]]))
    assert make_classifier("max_mean").head.in_features == 2 * make_classifier("max").head.in_features


def test_overfits_tiny_labeled_set():
    model = make_classifier("mean", classes=3)
    ids = torch.randint(4, 20, (12, 7))
    batch = ClassifierBatch(ids, torch.randint(2, 8, (12,)), torch.arange(12) % 3)
    first, last = overfit(model, batch, steps=150, lr=0.02)
    assert first > 0.9 and last < 0.05
    logits, _ = model(batch.ids, batch.lengths)
    assert torch.equal(logits.argmax(-1), batch.labels)


def test_class_weights_change_the_loss():
    model = make_classifier(classes=2)
    batch = ClassifierBatch(torch.tensor([[5, 6], [7, 8], [9, 4]]), torch.tensor([2, 2, 2]), torch.tensor([0, 0, 1]))
    plain = model.loss(batch).loss
    model.class_weights.copy_(torch.tensor([0.0, 1.0]))
    only_second = model.loss(batch).loss
    logits, _ = model(batch.ids, batch.lengths)
    expected = torch.nn.functional.cross_entropy(logits[2:], batch.labels[2:])
    torch.testing.assert_close(only_second, expected)
    assert not torch.isclose(plain, only_second)


def test_label_smoothing_trains_on_smoothed_targets_and_logs_plain_cross_entropy():
    plain_model = make_classifier(classes=2, hidden_classes=1)
    smoothed = make_classifier(classes=2, hidden_classes=1, label_smoothing=0.2)
    batch = ClassifierBatch(torch.tensor([[5, 6], [7, 8], [9, 4]]), torch.tensor([2, 1, 2]), torch.tensor([0, 2, 1]))
    logits = smoothed.all_logits(batch.ids, batch.lengths)[0]  # the hidden class's logit too: it is smoothed over
    output, plain = smoothed.loss(batch), plain_model.loss(batch)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(logits, batch.labels, label_smoothing=0.2))
    torch.testing.assert_close(output.total, plain.total)  # same weights (seed 0): the logged NLL is unsmoothed
    assert not torch.isclose(output.loss, plain.loss)


def test_adversarial_offset_has_the_asked_size_and_raises_the_loss():
    model = make_classifier(classes=2, classifier_hidden=5)
    ids = torch.tensor([[5, 6, 7, 0], [4, 9, 8, 3]])
    batch = ClassifierBatch(ids, torch.tensor([3, 4]), torch.tensor([0, 1]))
    real = ids != 0
    probe = probe_like(model.encoder.embedding, ids)
    clean, _ = model._weighted_loss(batch, probe)
    embedded = model.encoder.embedding(ids)
    offset = adversarial_offset(clean, probe, embedded, real, 0.05)
    torch.testing.assert_close(offset.flatten(1).norm(dim=1), 0.05 * embedded.flatten(1).norm(dim=1))
    assert torch.all(offset[0, 3] == 0)  # padding is not moved
    moved, _ = model._weighted_loss(batch, offset)
    torch.manual_seed(1)
    random = torch.randn_like(offset) * real[..., None]
    random = random * (offset.flatten(1).norm(dim=1) / random.flatten(1).norm(dim=1))[:, None, None]
    randomly_moved, _ = model._weighted_loss(batch, random)
    assert moved > randomly_moved and moved > clean  # the gradient's direction raises the loss most


def test_adversarial_loss_adds_the_moved_loss_in_training_only():
    plain, adversarial = make_classifier(classes=2), make_classifier(classes=2, adversarial=0.1)
    batch = ClassifierBatch(torch.tensor([[5, 6, 7], [4, 9, 0]]), torch.tensor([3, 2]), torch.tensor([0, 1]))
    torch.testing.assert_close(adversarial.loss(batch).loss, plain.loss(batch).loss)  # eval: no perturbation
    plain.train(), adversarial.train()
    trained, clean = adversarial.loss(batch), plain.loss(batch)
    torch.testing.assert_close(trained.total, clean.total)  # the log keeps the clean cross-entropy
    assert trained.loss > 2 * clean.loss
    trained.loss.backward()
    assert all(p.grad is not None for p in adversarial.parameters() if p.requires_grad)

@pytest.mark.parametrize("bidirectional", [False, True])
def test_transfer_copies_language_model_weights(bidirectional):
    torch.manual_seed(1)
    lm = LanguageModel(ModelConfig(**SMALL), vocab_size=20).eval()
    classifier = make_classifier(bidirectional=bidirectional)
    groups = copy_language_model(lm.encoder, classifier.encoder)
    assert torch.equal(classifier.encoder.embedding.weight, lm.encoder.embedding.weight)
    for name in ("weight_hh_l0", "bias_ih_l0", "weight_ih_l0", "weight_hh_l1", "bias_hh_l1"):
        assert torch.equal(getattr(classifier.encoder.lstm, name), getattr(lm.encoder.lstm, name)), name
    first_layer_input = classifier.encoder.lstm.weight_ih_l1
    assert torch.equal(first_layer_input[:, :12], lm.encoder.lstm.weight_ih_l1)
    if bidirectional:
        assert torch.all(first_layer_input[:, 12:] == 0)
    # The forward direction computes exactly the LM's hidden states at the start.
    ids = torch.randint(4, 20, (2, 6))
    forward = classifier.encoder(ids, torch.tensor([6, 6])).outputs[..., :12]
    torch.testing.assert_close(forward, lm.encoder(ids).outputs)
    assert [len(group) for group in groups] == [4, 4, 1]  # top layer first, the embedding last


def test_transfer_from_backward_language_model_fills_the_backward_direction():
    torch.manual_seed(1)
    lm = LanguageModel(ModelConfig(**SMALL), vocab_size=20).eval()
    classifier = make_classifier(bidirectional=True)
    fresh_forward = classifier.encoder.lstm.weight_hh_l0.clone()
    copy_language_model(lm.encoder, classifier.encoder, backward=True)
    assert torch.equal(classifier.encoder.lstm.weight_hh_l0, fresh_forward)  # forward direction untouched
    for name in ("weight_hh_l0", "bias_ih_l0", "weight_ih_l0", "weight_hh_l1", "bias_hh_l1"):
        assert torch.equal(getattr(classifier.encoder.lstm, name + "_reverse"), getattr(lm.encoder.lstm, name)), name
    second_layer_input = classifier.encoder.lstm.weight_ih_l1_reverse  # reads [forward; backward] below
    assert torch.all(second_layer_input[:, :12] == 0)
    assert torch.equal(second_layer_input[:, 12:], lm.encoder.lstm.weight_ih_l1)
    # The backward direction computes the LM's hidden states over the reversed text, each row
    # within its own length (the second is padded).
    ids = torch.randint(4, 20, (2, 6))
    encoded = classifier.encoder(ids, torch.tensor([6, 4])).outputs[..., 12:]
    torch.testing.assert_close(encoded[0], lm.encoder(ids[:1].flip(1)).outputs[0].flip(0))
    torch.testing.assert_close(encoded[1, :4], lm.encoder(ids[1:, :4].flip(1)).outputs[0].flip(0))


def test_backward_language_model_needs_a_bidirectional_classifier():
    with pytest.raises(UserError, match="backward LM"):
        check_compatible(ModelConfig(**SMALL, backward=True), ModelConfig(**SMALL), Path("lm-run"))
    check_compatible(ModelConfig(**SMALL, backward=True), ModelConfig(**SMALL, bidirectional=True), Path("lm-run"))


def test_thawing_schedule_goes_top_down():
    groups = [["top"], ["bottom"], ["embedding"]]
    frozen_at = thawing_schedule(groups, every=10)
    assert frozen_at(0) == ["top", "bottom", "embedding"]
    assert frozen_at(10) == ["bottom", "embedding"]
    assert frozen_at(25) == ["embedding"]
    assert frozen_at(30) == []


def test_stratified_folds_partition_and_balance():
    labels = ["a"] * 30 + ["b"] * 10
    folds = stratified_folds(labels, 5, seed=3)
    assert sorted(i for fold in folds for i in fold) == list(range(40))
    for fold in folds:
        assert [labels[i] for i in fold].count("a") == 6 and [labels[i] for i in fold].count("b") == 2
    assert stratified_folds(labels, 5, seed=3) == folds != stratified_folds(labels, 5, seed=4)


def test_classification_scores():
    result = classification_scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["x", "y", "z"])
    assert result.accuracy == pytest.approx(60.0)
    assert result.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # F1: x 2*1/(2+2)=0.5, y 2*2/(3+2)=0.8, z 0 -> macro 43.33
    assert result.macro_f1 == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)


def test_hidden_classes_train_but_are_never_predicted():
    """data.neutral_phrases: a third output learns from its examples, `forward` gives the labels' logits alone."""
    model = make_classifier("max", classes=2, hidden_classes=1).train()
    ids, lengths = torch.tensor([[5, 6, 7], [8, 9, 4]]), torch.tensor([3, 3])
    visible, _ = model(ids, lengths)
    everything, _ = model.all_logits(ids, lengths)
    assert visible.shape == (2, 2) and everything.shape == (2, 3)
    torch.testing.assert_close(visible, everything[:, :2])
    model.loss(ClassifierBatch(ids, lengths, torch.tensor([2, 2]))).loss.backward()
    hidden_row, label_rows = model.head.weight.grad[2], model.head.weight.grad[:2]
    assert hidden_row.abs().sum() > 0 and label_rows.abs().sum() > 0  # pushed towards the hidden class


def test_loss_figures_stay_on_the_device():
    """The Trainer reads total and tokens back once per log line: loss() leaves them tensors."""
    model = make_classifier("max", classes=2).train()
    ids, lengths, labels = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2]), torch.tensor([0, 1])
    output = model.loss(ClassifierBatch(ids, lengths, labels))
    assert isinstance(output.total, torch.Tensor) and not output.total.requires_grad
    assert isinstance(output.tokens, torch.Tensor) and int(output.tokens) == 5
    assert float(output.total) == pytest.approx(float(output.loss.detach()) * 2, rel=1e-5)  # unweighted classes
