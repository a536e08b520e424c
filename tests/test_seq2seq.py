import itertools

import pytest
import torch
from torch import nn

from lstmnlp.config import ModelConfig
from lstmnlp.models.outputs import smoothed_cross_entropy
from lstmnlp.models.seq2seq import Seq2SeqModel
from lstmnlp.modules import additive_scores as additive_scores_module
from lstmnlp.modules.attention import Attention
from lstmnlp.search import beam_search, sample
from lstmnlp.translation import collate
from lstmnlp.translation_scoring import pair_log_likelihoods

from conftest import overfit

EOS, BOS = 3, 2


@pytest.mark.parametrize("kind", ["bahdanau", "luong", "dot"])
def test_attention_ignores_padding(kind):
    torch.manual_seed(0)
    attention = Attention(kind, query_size=6, key_size=6, attention_size=5)
    keys = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    query = torch.randn(2, 3, 6)
    contexts, weights = attention(query, keys, attention.project_keys(keys), mask)
    assert contexts.shape == (2, 3, 6) and weights.shape == (2, 3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert weights[1, :, 2:].abs().sum() == 0
    changed = keys.clone()
    changed[1, 2:] = 100.0  # padding content must not matter
    contexts2, _ = attention(query, changed, attention.project_keys(changed), mask)
    torch.testing.assert_close(contexts2[1], contexts[1])


@pytest.mark.parametrize("grad", [True, False])
def test_additive_attention_is_the_textbook_formula(grad):
    """2 v^T sigmoid(2x) differs from v^T tanh(x) by sum(v) per query: the same weights."""
    torch.manual_seed(1)
    attention = Attention("bahdanau", query_size=6, key_size=7, attention_size=5)
    keys, query = torch.randn(2, 4, 7), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    energy = attention.energy(torch.tanh(attention.query_layer(query)[:, :, None]
                                         + attention.key_layer(keys)[:, None])).squeeze(-1)
    expected = torch.softmax(energy.masked_fill(~mask[:, None], float("-inf")), dim=-1)
    with torch.set_grad_enabled(grad):
        contexts, weights = attention(query, keys, attention.project_keys(keys), mask)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(contexts, torch.bmm(expected, keys))


@pytest.mark.parametrize("slice_elements", [1, 10**6])
def test_additive_scores_gradcheck_in_slices(monkeypatch, slice_elements):
    """The hand-written backward against finite differences, sliced one row at a time or not."""
    monkeypatch.setattr(additive_scores_module, "SLICE_ELEMENTS", slice_elements)
    torch.manual_seed(2)
    query = torch.randn(3, 4, 5, dtype=torch.double, requires_grad=True)
    keys = torch.randn(3, 6, 5, dtype=torch.double, requires_grad=True)
    energy = torch.randn(5, dtype=torch.double, requires_grad=True)
    expected = torch.sigmoid(query[:, :, None] + keys[:, None]) @ energy
    torch.testing.assert_close(additive_scores_module.additive_scores(query, keys, energy), expected)
    assert torch.autograd.gradcheck(additive_scores_module.additive_scores, (query, keys, energy))


def tiny_model(input_feeding=True, attention="bahdanau", vocab=9) -> Seq2SeqModel:
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=8, hidden_size=6, num_layers=2, bidirectional=True, dropout=0.0,
                         decoder_hidden_size=10, attention=attention, input_feeding=input_feeding,
                         tie_weights=True)
    return Seq2SeqModel(config, source_vocab_size=vocab, target_vocab_size=vocab).eval()


PAIRS = [([4, 5, 6], [7, 8]), ([5], [4, 4, 6, 7]), ([8, 7, 6, 5, 4], [5])]


DECODERS = [(True, "bahdanau"), (False, "bahdanau"), (True, "luong"), (False, "luong"), (False, "none")]


@pytest.mark.parametrize("input_feeding, attention", DECODERS)
def test_stepwise_decoding_equals_teacher_forcing(input_feeding, attention):
    model = tiny_model(input_feeding, attention)
    batch = collate(PAIRS)
    logits, _ = model(batch)
    state = model.encode(batch.source_ids, batch.source_lengths)
    for step in range(batch.target_inputs.size(1)):
        log_probs, state = model.step(batch.target_inputs[:, step], state)
        torch.testing.assert_close(log_probs, torch.log_softmax(logits[:, step], -1), atol=1e-5, rtol=0)


def test_without_attention_the_source_reaches_only_the_start_state():
    """attention none (sequence autoencoders): once the start state is made, the encoder outputs
    no longer matter, and the attention weights are zeros."""
    model = tiny_model(False, "none")
    batch = collate(PAIRS)
    state = model.encode(batch.source_ids, batch.source_lengths)
    scrambled = state._replace(memory=torch.randn_like(state.memory), projected=torch.randn_like(state.projected))
    vectors, weights, _ = model.decoder(batch.target_inputs, state)
    torch.testing.assert_close(model.decoder(batch.target_inputs, scrambled)[0], vectors)
    assert weights.shape == (3, batch.target_inputs.size(1), batch.source_ids.size(1)) and not weights.any()
    assert model.decoder.combine is None and model.decoder.attention is None
    with pytest.raises(ValueError, match="input feeding needs attention"):
        tiny_model(True, "none")


def test_padding_does_not_change_a_sentence():
    model = tiny_model()
    batch = collate(PAIRS)
    logits, _ = model(batch)
    for row, pair in enumerate(PAIRS):
        alone, _ = model(collate([pair]))
        length = len(pair[1]) + 1
        torch.testing.assert_close(logits[row, :length], alone[0, :length], atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ["bahdanau", "none"])
def test_overfits_one_batch(attention):
    first, last = overfit(tiny_model(attention == "bahdanau", attention), collate(PAIRS), steps=120, lr=0.03)
    assert last < 0.1 * first


def encoded(model, pairs):
    batch = collate([(source, [0]) for source, _ in pairs])
    return model.encode(batch.source_ids, batch.source_lengths), torch.full((len(pairs),), BOS)


def test_beam_one_is_greedy_and_batch_independent():
    model = tiny_model()
    state, starts = encoded(model, PAIRS)
    greedy = sample(model.step, state, starts, max_tokens=6, temperature=0, eos_id=EOS)
    beams = beam_search(model.step, state, starts, beam_size=1, max_lengths=6, eos_id=EOS)
    wide = beam_search(model.step, state, starts, beam_size=4, max_lengths=6, eos_id=EOS, alpha=1.0, nbest=2)
    for row in range(len(PAIRS)):
        ids = greedy[row].tolist()
        assert beams[row][0].tokens == (ids[:ids.index(EOS)] if EOS in ids else ids)
        alone_state, alone_start = encoded(model, PAIRS[row:row + 1])
        alone = beam_search(model.step, alone_state, alone_start, beam_size=4, max_lengths=6, eos_id=EOS,
                            alpha=1.0, nbest=2)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in wide[row]]


@pytest.mark.parametrize("input_feeding, attention", DECODERS)
def test_beam_rows_share_one_memory_row_per_sentence(input_feeding, attention):
    """expand_beams keeps the encoder memory once per sentence; steps, reordering and dropping a
    sentence give what copying the memory for every row gives."""
    model = tiny_model(input_feeding, attention)
    state, _ = encoded(model, PAIRS)
    beams = 3
    rows = torch.arange(len(PAIRS)).repeat_interleave(beams)
    grouped, copied = state.expand_beams(beams), state.select(rows)
    assert grouped.memory.size(0) == len(PAIRS) and copied.memory.size(0) == len(PAIRS) * beams
    prev = torch.tensor([4, 5, 6, 7, 8, 4, 5, 6, 7])
    within = torch.tensor([2, 0, 0, 3, 3, 4, 8, 6, 7])  # each row stays within its sentence
    for _ in range(2):
        grouped_lp, grouped = model.step(prev, grouped)
        copied_lp, copied = model.step(prev, copied)
        torch.testing.assert_close(grouped_lp, copied_lp, atol=1e-5, rtol=0)
        grouped, copied = grouped.reorder_beams(within), copied.select(within)
    keep = torch.tensor([0, 1, 2, 6, 7, 8])  # drop the middle sentence
    grouped, copied = grouped.select(keep), copied.select(keep)
    assert grouped.memory.size(0) == 2
    torch.testing.assert_close(model.step(prev[keep], grouped)[0], model.step(prev[keep], copied)[0],
                               atol=1e-5, rtol=0)


def restricted(step):
    """`step` allowed only <eos> 3 and the ordinary tokens 4, 5 (renormalized over them)."""
    def run(prev_ids, state):
        log_probs, state = step(prev_ids, state)
        log_probs[:, :3] = float("-inf")
        log_probs[:, 3:] = torch.log_softmax(log_probs[:, 3:], -1)
        return log_probs, state
    return run


def exhaustive_best(score, max_len: int) -> tuple[float, list[int]]:
    """The best (score(tokens, ended), tokens) over every sequence of 4s and 5s up to `max_len`
    long; the shorter ones end with <eos>."""
    return max((score(list(t), len(t) < max_len), list(t)) for length in range(max_len + 1)
               for t in itertools.product([4, 5], repeat=length))


def test_large_beam_equals_exhaustive_search_on_tiny_model():
    model = tiny_model(vocab=6)
    state, starts = encoded(model, [([4, 5, 4], [5])])
    step = restricted(model.step)

    @torch.no_grad()
    def score(tokens, ended):
        run_state, prev, total = state, starts, 0.0
        for token in tokens + ([EOS] if ended else []):
            log_probs, run_state = step(prev, run_state)
            total += float(log_probs[0, token])
            prev = torch.tensor([token])
        return total

    max_len = 3
    best_score, best_tokens = exhaustive_best(score, max_len)
    found = beam_search(step, state, starts, beam_size=20, max_lengths=max_len, eos_id=EOS)[0][0]
    assert found.tokens == best_tokens and abs(found.score - best_score) < 1e-5


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_smoothed_cross_entropy_matches_torch(smoothing: float) -> None:
    torch.manual_seed(0)
    logits = torch.randn(12, 7, requires_grad=True)
    targets = torch.tensor([1, 2, 0, 3, 6, 0, 5, 4, 1, 0, 2, 3])  # 0 is padding
    loss, plain, count = smoothed_cross_entropy(logits, targets, pad_id=0, smoothing=smoothing)
    expected = nn.functional.cross_entropy(logits, targets, ignore_index=0, label_smoothing=smoothing, reduction="sum")
    expected_plain = nn.functional.cross_entropy(logits, targets, ignore_index=0, reduction="sum")
    assert isinstance(count, torch.Tensor) and count == 9  # no read-back from the GPU
    assert torch.allclose(loss, expected, atol=1e-5) and torch.allclose(plain, expected_plain, atol=1e-5)
    (grad,) = torch.autograd.grad(loss, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert torch.allclose(grad, expected_grad, atol=1e-6)


@pytest.mark.parametrize("layers", [1, 2])
def test_input_feeding_with_weights_matches_module_loop(layers: int) -> None:
    """The weight-level input-feeding loop computes what stepping nn.LSTM itself computes."""
    from lstmnlp.modules.decoder import AttentionDecoder
    torch.manual_seed(0)
    decoder = AttentionDecoder(vocab_size=20, embedding_dim=6, hidden_size=8, num_layers=layers, encoder_size=10,
                               attention="bahdanau", input_feeding=True, dropout=0.0)
    memory, mask = torch.randn(3, 5, 10), torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    state = decoder.initial_state(memory, torch.randn(3, 10), mask)
    prev = torch.randint(1, 20, (3, 4))
    embedded = decoder.embedding(prev)
    vectors, weights, final = decoder._steps_with_weights(embedded, state)
    expected, expected_weights, expected_final = decoder._feed_with_module(embedded, state)
    torch.testing.assert_close(vectors, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(final.cell, expected_final.cell, atol=1e-6, rtol=0)
    grads = torch.autograd.grad(vectors.square().sum(), list(decoder.lstm.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(decoder.lstm.parameters()))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-4)


def test_decoding_weight_casts_follow_weight_changes():
    """Cached bf16 copies of the decoder weights are used while the weights stay, renewed when they change."""
    from lstmnlp.modules.decoder import AttentionDecoder
    torch.manual_seed(0)
    decoder = AttentionDecoder(vocab_size=20, embedding_dim=6, hidden_size=8, num_layers=1, encoder_size=10,
                               attention="luong", input_feeding=True, dropout=0.0).eval()
    memory, mask = torch.randn(2, 5, 10), torch.ones(2, 5, dtype=torch.bool)
    state = decoder.initial_state(memory, torch.randn(2, 10), mask)
    prev = torch.tensor([[3], [4]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        first, _, _ = decoder(prev, state)
        again, _, _ = decoder(prev, state)
        decoder.lstm.weight_hh_l0.mul_(0.5)  # as an optimizer step or a weight load would
        changed, _, _ = decoder(prev, state)
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.allclose(first.float(), changed.float())
    with torch.no_grad():
        expected, _, _ = decoder._feed_with_module(decoder.embedding(prev), state)
    torch.testing.assert_close(changed.float(), expected.float(), atol=3e-2, rtol=0)


@pytest.mark.parametrize("input_feeding, attention", [(True, "bahdanau"), (False, "bahdanau"), (False, "none")])
def test_int8_model_steps_close_to_float(input_feeding, attention):
    """--quantize int8: the decoding steps' log-probabilities stay within quantization error of
    the float model's."""
    import copy

    from lstmnlp.quantize import quantize_int8
    model = tiny_model(input_feeding, attention)
    quantized = quantize_int8(copy.deepcopy(model))
    assert type(quantized.decoder.lstm) is not nn.LSTM
    if attention != "none":
        assert type(quantized.decoder.combine) is not nn.Linear
        assert type(quantized.decoder.attention.energy) is nn.Linear  # left in float: see quantize.py
    batch = collate(PAIRS)
    float_state = model.encode(batch.source_ids, batch.source_lengths)
    int8_state = quantized.encode(batch.source_ids, batch.source_lengths)
    for step in range(batch.target_inputs.size(1)):
        float_log_probs, float_state = model.step(batch.target_inputs[:, step], float_state)
        int8_log_probs, int8_state = quantized.step(batch.target_inputs[:, step], int8_state)
        torch.testing.assert_close(int8_log_probs, float_log_probs, atol=0.05, rtol=0)


@pytest.mark.parametrize("input_feeding, attention", [(True, "bahdanau"), (False, "luong")])
def test_forced_scores_are_teacher_forced_cross_entropy(input_feeding, attention):
    """Reference scores through the decoding step equal the teacher-forced pass's cross-entropy
    of each pair (target pieces and <eos>), whatever the pairs are batched with."""
    model = tiny_model(input_feeding, attention)
    logits, _ = model(collate(PAIRS))  # (B, T, V)
    batch = collate(PAIRS)
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), batch.target_outputs, reduction="none",
                                      ignore_index=0)  # (B, T)
    expected = (-nll.sum(dim=1)).tolist()
    assert pair_log_likelihoods(model, PAIRS) == pytest.approx(expected, abs=1e-4)
    assert pair_log_likelihoods(model, PAIRS, batch_size=1) == pytest.approx(expected, abs=1e-4)


def test_forced_score_of_a_beam_hypothesis_is_its_beam_score():
    """Scoring what beam search found gives back its score: the same step, <eos> included. The
    model is trained a little on PAIRS first, so that its hypotheses end with <eos>."""
    model = tiny_model()
    overfit(model, collate(PAIRS), steps=30, lr=0.03)
    state, starts = encoded(model, PAIRS)
    found = beam_search(model.step, state, starts, beam_size=3, max_lengths=12, eos_id=EOS, nbest=3)
    pairs = [(source, hypothesis.tokens) for (source, _), row in zip(PAIRS, found) for hypothesis in row]
    scores = [hypothesis.score for row in found for hypothesis in row]
    assert len(pairs) == 9 and all(len(tokens) < 12 for _, tokens in pairs)  # each ended with <eos>
    assert pair_log_likelihoods(model, pairs) == pytest.approx(scores, abs=1e-4)
