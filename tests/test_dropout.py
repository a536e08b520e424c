import pytest
import torch

from lstmnlp.config import ModelConfig
from lstmnlp.models import build_encoder
from lstmnlp.modules.dropout import Dropout, WordDropout, dropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_with_probability_one_minus_p_and_rescales(dtype):
    torch.manual_seed(0)
    values = torch.ones(200, 500, dtype=dtype, requires_grad=True)
    dropped = dropout(values, 0.3, training=True)
    assert dropped.dtype == dtype
    kept = dropped != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(dropped[kept].float(), torch.full((int(kept.sum()),), 1 / 0.7), rtol=1e-2, atol=0)
    dropped.sum().backward()
    torch.testing.assert_close(values.grad, dropped.detach())  # gradient = mask / (1 - p)


def test_dropout_is_identity_when_not_training_and_drops_all_at_one():
    values = torch.randn(4, 5)
    assert dropout(values, 0.5, training=False) is values
    module = Dropout(0.5).eval()
    assert module(values) is values
    assert dropout(values, 1.0, training=True).abs().sum() == 0
    with pytest.raises(ValueError):
        Dropout(1.5)


def test_word_dropout_drops_whole_tokens():
    torch.manual_seed(0)
    embedded = torch.randn(64, 50, 16)
    layer = WordDropout(0.25)
    dropped = layer(embedded)
    zeroed = (dropped == 0).all(dim=-1)  # (B, T): a whole vector, never part of one
    assert abs(zeroed.float().mean().item() - 0.25) < 0.02
    assert ((dropped == 0) == zeroed[..., None]).all()
    torch.testing.assert_close(dropped[~zeroed], embedded[~zeroed] / 0.75)
    assert layer.eval()(embedded) is embedded


def test_encoder_applies_word_dropout_only_in_training():
    config = ModelConfig(embedding_dim=8, hidden_size=8, num_layers=1, dropout=0.0, word_dropout=0.5)
    torch.manual_seed(0)
    encoder = build_encoder(config, vocab_size=20, pad_id=0, bidirectional=True)
    ids = torch.randint(1, 20, (4, 12))
    first, second = encoder(ids).outputs, encoder(ids).outputs
    assert not torch.equal(first, second)  # other tokens dropped each time
    encoder.eval()
    torch.testing.assert_close(encoder(ids).outputs, encoder(ids).outputs)
