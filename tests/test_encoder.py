import pytest
import torch

from lstmnlp.modules.cells import SteppedLSTMLayer, reverse_padded
from lstmnlp.modules.encoder import StackedLSTMEncoder

VARIANTS = {"fused": {}, "peephole": {"peephole": True}, "variational": {"recurrent_dropout": 0.3}}


def make_encoder(bidirectional: bool, **options) -> StackedLSTMEncoder:
    torch.manual_seed(0)
    return StackedLSTMEncoder(vocab_size=30, embedding_dim=8, hidden_size=6, num_layers=2,
                              bidirectional=bidirectional, dropout=0.2, **options)


def padded_batch():
    torch.manual_seed(1)
    lengths = torch.tensor([7, 2, 5, 1])
    ids = torch.randint(4, 30, (4, 7))
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids, lengths


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes(bidirectional, variant):
    encoder = make_encoder(bidirectional, **VARIANTS[variant])
    ids, lengths = padded_batch()
    output = encoder(ids, lengths)
    directions = 2 if bidirectional else 1
    assert output.outputs.shape == (4, 7, 6 * directions)
    assert output.final.hidden.shape == (2 * directions, 4, 6)
    # The fused kernel over a variable-length batch does not know each row's last cell.
    assert (output.final.cell is None) == (variant == "fused")
    full = encoder(ids[:, :3])
    assert full.final.cell.shape == (2 * directions, 4, 6)
    assert encoder.output_size == 6 * directions


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_change_outputs(bidirectional, variant):
    encoder = make_encoder(bidirectional, **VARIANTS[variant]).eval()
    ids, lengths = padded_batch()
    batched = encoder(ids, lengths)
    for row, length in enumerate(lengths.tolist()):
        alone = encoder(ids[row:row + 1, :length])
        torch.testing.assert_close(batched.outputs[row, :length], alone.outputs[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(batched.final.hidden[:, row], alone.final.hidden[:, 0], atol=1e-5, rtol=0)
        if batched.final.cell is not None:
            torch.testing.assert_close(batched.final.cell[:, row], alone.final.cell[:, 0], atol=1e-5, rtol=0)
        assert batched.outputs[row, length:].abs().sum() == 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_padded_path_matches_packed_lstm(bidirectional):
    """Training mode with dropout off: same outputs, final hidden state and gradients as packing."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    encoder = make_encoder(bidirectional, weight_dropout=0.0)
    encoder.lstm.dropout = 0.0
    ids, lengths = padded_batch()
    output = encoder(ids, lengths)
    embedded = encoder.embedding(ids)
    packed, (hidden, _) = encoder.lstm(pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False))
    expected, _ = pad_packed_sequence(packed, batch_first=True, total_length=ids.size(1))
    torch.testing.assert_close(output.outputs, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(output.final.hidden, hidden, atol=1e-6, rtol=0)
    grads = torch.autograd.grad(output.outputs.square().sum(), list(encoder.lstm.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(encoder.lstm.parameters()))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-4)


def test_forward_half_first_backward_half_second():
    encoder = make_encoder(True).eval()
    ids, lengths = padded_batch()
    output = encoder(ids, lengths)
    hidden = encoder.hidden_size
    # Top layer: final forward state is the output at the last real step, backward at step 0.
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(output.outputs[row, length - 1, :hidden], output.final.hidden[2, row])
        torch.testing.assert_close(output.outputs[row, 0, hidden:], output.final.hidden[3, row])


def test_stepped_layer_matches_fused_lstm():
    """Without peepholes or dropout, the stepped layer computes exactly what nn.LSTM does."""
    torch.manual_seed(0)
    fused = torch.nn.LSTM(5, 4, batch_first=True)
    stepped = SteppedLSTMLayer(5, 4)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(stepped, name).copy_(getattr(fused, f"{name}_l0"))
    inputs = torch.randn(3, 6, 5)
    expected, (hidden, cell) = fused(inputs)
    zeros = torch.zeros(3, 4)
    actual, (hidden2, cell2) = stepped(inputs, torch.ones(3, 6, dtype=torch.bool), (zeros, zeros))
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(hidden2, hidden[0])
    torch.testing.assert_close(cell2, cell[0])


def test_gradients_flow_to_every_parameter():
    for variant in VARIANTS.values():
        encoder = make_encoder(True, **variant, weight_dropout=0.3)
        ids, lengths = padded_batch()
        encoder(ids, lengths).outputs.sum().backward()
        for name, parameter in encoder.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_peephole_gradcheck():
    torch.manual_seed(0)
    layer = SteppedLSTMLayer(3, 2, peephole=True).double()
    with torch.no_grad():
        layer.peephole.normal_()
    inputs = torch.randn(2, 4, 3, dtype=torch.double, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    zeros = torch.zeros(2, 2, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda x: layer(x, mask, (zeros, zeros))[0], (inputs,))


def test_weight_dropout_only_while_training():
    encoder = make_encoder(False, weight_dropout=0.5)
    ids, lengths = padded_batch()
    encoder.eval()
    first, second = encoder(ids, lengths).outputs, encoder(ids, lengths).outputs
    torch.testing.assert_close(first, second)
    encoder.train()
    torch.manual_seed(3)
    assert not torch.allclose(encoder(ids, lengths).outputs, first)
    # The parameters themselves are untouched by DropConnect.
    assert (encoder.lstm.weight_hh_l0 == 0).sum() == 0


def test_forget_gate_bias_and_orthogonal_init():
    encoder = make_encoder(False, init="orthogonal", forget_bias=1.0)
    bias = encoder.lstm.bias_ih_l0 + encoder.lstm.bias_hh_l0
    assert torch.all(bias[6:12] == 1.0) and torch.all(bias[:6] == 0)
    block = encoder.lstm.weight_hh_l0[:6]
    torch.testing.assert_close(block @ block.t(), torch.eye(6), atol=1e-5, rtol=0)


def test_reverse_padded():
    values = torch.arange(8).view(2, 4, 1)
    reversed_ = reverse_padded(values, torch.tensor([4, 2]))
    assert reversed_.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_unaligned_outputs_are_the_backward_half_reversed():
    """time_aligned=False (for max/mean pooling) only leaves the top backward half reversed."""
    encoder = make_encoder(True).eval()
    ids, lengths = padded_batch()
    aligned = encoder(ids, lengths).outputs
    unaligned = encoder(ids, lengths, time_aligned=False).outputs
    torch.testing.assert_close(unaligned[..., :6], aligned[..., :6])
    torch.testing.assert_close(unaligned[..., 6:], reverse_padded(aligned[..., 6:], lengths))
    assert not torch.allclose(unaligned, aligned)
    mask = (torch.arange(7)[None, :] < lengths[:, None])[..., None]
    torch.testing.assert_close(aligned.masked_fill(~mask, -1e9).amax(1), unaligned.masked_fill(~mask, -1e9).amax(1))


def test_reverse_padded_keeps_padding_and_reverses_rows():
    values = torch.arange(12.0).view(2, 3, 2)
    reversed_ = reverse_padded(values, torch.tensor([3, 2]))
    assert reversed_[0].tolist() == [[4.0, 5.0], [2.0, 3.0], [0.0, 1.0]]
    assert reversed_[1].tolist() == [[8.0, 9.0], [6.0, 7.0], [10.0, 11.0]]


def test_one_step_from_weights_equals_the_fused_lstm():
    """Decoding one position at a time (LM sampling) skips the module call: same h, c, output."""
    encoder = make_encoder(False).eval()
    ids, _ = padded_batch()
    state = encoder(ids[:, :3]).final
    with torch.no_grad():
        stepped = encoder(ids[:, 3:4], state=state)
    fused = encoder(ids[:, 3:4], state=state)  # with gradients on: the module path
    torch.testing.assert_close(stepped.outputs, fused.outputs, atol=1e-6, rtol=0)
    torch.testing.assert_close(stepped.final.hidden, fused.final.hidden, atol=1e-6, rtol=0)
    torch.testing.assert_close(stepped.final.cell, fused.final.cell, atol=1e-6, rtol=0)
