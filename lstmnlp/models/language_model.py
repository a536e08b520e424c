"""LSTM language model: embedding -> unidirectional StackedLSTMEncoder -> dropout -> vocabulary.

Shapes: B batch (parallel streams), T time, H hidden, E embedding, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lstmnlp.config import ModelConfig
from lstmnlp.errors import UserError
from lstmnlp.models.outputs import LossOutput
from lstmnlp.models import build_encoder
from lstmnlp.modules.dropout import Dropout
from lstmnlp.modules.encoder import LSTMState


class LanguageModelBatch(NamedTuple):
    inputs: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) the next token at each position


class LanguageModel(nn.Module):
    """Next-token model over a token stream, carrying its state across windows."""

    def __init__(self, config: ModelConfig, *, vocab_size: int, pad_id: int = 0) -> None:
        super().__init__()
        if config.bidirectional:
            raise UserError("model.bidirectional: a language model must not see the future; "
                            "set model.bidirectional=false")
        self.encoder = build_encoder(config, vocab_size=vocab_size, pad_id=pad_id, bidirectional=False)
        self.output_dropout = Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        # Tying needs the last hidden layer in embedding space: project when sizes differ.
        self.projection = (nn.Linear(config.hidden_size, config.embedding_dim)
                           if config.tie_weights and config.hidden_size != config.embedding_dim else None)
        output_in = config.embedding_dim if config.tie_weights else config.hidden_size
        self.output = nn.Linear(output_in, vocab_size)
        if config.tie_weights:
            self.output.weight = self.encoder.embedding.weight  # Press & Wolf, arXiv:1608.05859
        elif config.init in ("xavier", "orthogonal"):
            nn.init.xavier_uniform_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def initial_state(self, batch_size: int) -> LSTMState:
        # the embedding's device: int8 quantization replaces the output layer's weight tensor
        return self.encoder.initial_state(batch_size, self.encoder.embedding.weight.device)

    def forward(self, ids: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Logits (B, T, V) for the token after each input position, and the state after the last."""
        encoded = self.encoder(ids, state=state)
        hidden = self.output_dropout(encoded.outputs)  # (B, T, H)
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, E)
        return self.output(hidden), encoded.final

    def loss(self, batch: LanguageModelBatch, carry: LSTMState | None = None) -> LossOutput:
        """Mean cross-entropy of the targets; the final state is returned for the next window
        (`carry` may come back from a checkpoint as a plain (hidden, cell) tuple)."""
        logits, final = self(batch.inputs, None if carry is None else LSTMState(*carry))
        losses = nn.functional.cross_entropy(logits.float().flatten(0, 1), batch.targets.flatten(),
                                             reduction="sum")
        count = batch.targets.numel()
        return LossOutput(losses / count, losses.detach(), count, final)

    def step(self, prev_ids: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """One decoding step for search: (B,) ids -> (B, V) log-probabilities and the new state."""
        logits, state = self(prev_ids[:, None], state)
        return torch.log_softmax(logits[:, -1].float(), dim=-1), state
