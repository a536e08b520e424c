"""Models and the one place that maps a config to a model class."""

from __future__ import annotations

from torch import nn

from lstmnlp.config import SEQ2SEQ_TASKS, ExperimentConfig, ModelConfig
from lstmnlp.modules.encoder import StackedLSTMEncoder


def build_encoder(config: ModelConfig, *, vocab_size: int, pad_id: int, bidirectional: bool) -> StackedLSTMEncoder:
    """The shared StackedLSTMEncoder with the recipe's sizes and regularization."""
    encoder = StackedLSTMEncoder(
        vocab_size=vocab_size, embedding_dim=config.embedding_dim, hidden_size=config.hidden_size,
        num_layers=config.num_layers, bidirectional=bidirectional, pad_id=pad_id, dropout=config.dropout,
        embedding_dropout=config.embedding_dropout, word_dropout=config.word_dropout,
        weight_dropout=config.weight_dropout,
        recurrent_dropout=config.recurrent_dropout, peephole=config.peephole, init=config.init,
        forget_bias=config.forget_bias)
    encoder.embedding.weight.requires_grad_(not config.freeze_embeddings)  # the optimizer leaves it out
    return encoder


def build_model(config: ExperimentConfig, *, vocab_size: int, pad_id: int,
                target_vocab_size: int | None = None, num_classes: int = 0, hidden_classes: int = 0) -> nn.Module:
    """The model for `config.task`; `target_vocab_size` is for translation (default: `vocab_size`),
    `num_classes` (and `hidden_classes`, trained but never predicted) for classification."""
    if config.task == "lm":
        from lstmnlp.models.language_model import LanguageModel

        return LanguageModel(config.model, vocab_size=vocab_size, pad_id=pad_id)
    if config.task in SEQ2SEQ_TASKS:
        from lstmnlp.models.seq2seq import Seq2SeqModel

        return Seq2SeqModel(config.model, source_vocab_size=vocab_size,
                            target_vocab_size=target_vocab_size or vocab_size, pad_id=pad_id)
    if config.task == "classify":
        from lstmnlp.models.classifier import TextClassifier

        return TextClassifier(config.model, vocab_size=vocab_size, num_classes=num_classes, pad_id=pad_id,
                              hidden_classes=hidden_classes)
    raise ValueError(f"unknown task {config.task!r}")
