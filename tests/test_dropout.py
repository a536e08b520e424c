import pytest
import torch

from lstmnlp.modules.dropout import Dropout, dropout


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
