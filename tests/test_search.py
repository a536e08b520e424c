import itertools
import math
from typing import NamedTuple

import torch

from lstmnlp import search as search_module
from lstmnlp.search import (beam_search, filter_log_probs, force_tokens, length_penalty, sample, sample_scored,
                            top_k)


class Prefix(NamedTuple):
    """Search state for hand-made step functions: the tokens produced so far, per row."""

    tokens: torch.Tensor  # (B, t)

    def select(self, index):
        return Prefix(self.tokens.index_select(0, index))


EOS = 0


def table_step(table: dict[tuple[int, ...], list[float]], vocab: int):
    """A step function whose log-probs depend on the prefix, read from `table` (default uniform)."""
    def step(prev_ids, state):
        tokens = torch.cat([state.tokens, prev_ids[:, None]], dim=1)
        rows = []
        for row in tokens.tolist():
            probs = torch.tensor(table.get(tuple(row[1:]), [1.0 / vocab] * vocab))
            rows.append(probs.log())
        return torch.stack(rows), Prefix(tokens)
    return step


def start(batch=1):
    return Prefix(torch.zeros(batch, 0, dtype=torch.long)), torch.full((batch,), 9, dtype=torch.long)


def exhaustive_best(tables: dict, vocab: int, max_len: int, allowed=lambda sequence: True):
    """(tokens, score) of the most likely sequence of at most `max_len` tokens (ended by <eos>
    when shorter) among those `allowed` accepts, by trying every one; `tables` as `table_step`'s."""
    def logp(prefix, token):
        return torch.tensor(tables[prefix][token]).log().item()

    best_score, best_tokens = -float("inf"), None
    for length in range(max_len + 1):
        for sequence in itertools.product(range(1, vocab), repeat=length):
            if not allowed(sequence):
                continue
            score = sum(logp(sequence[:i], sequence[i]) for i in range(length))
            if length < max_len:
                score += logp(sequence, EOS)  # ended with eos
            if score > best_score:
                best_score, best_tokens = score, list(sequence)
    return best_tokens, best_score


def test_beam_finds_the_known_best_where_greedy_fails():
    # Greedy takes token 1 (0.6) then is stuck with 0.4 x 0.5; token 2 (0.4) leads to 0.9 then eos.
    table = {(): [0.0, 0.6, 0.4], (1,): [0.5, 0.25, 0.25], (2,): [0.9, 0.05, 0.05],
             (1, 1): [1.0, 0.0, 0.0], (1, 2): [1.0, 0.0, 0.0]}
    step = table_step(table, 3)
    state, ids = start()
    greedy = sample(step, state, ids, max_tokens=5, temperature=0, eos_id=EOS)
    assert greedy[0].tolist()[:2] == [1, 0]
    best = beam_search(step, state, ids, beam_size=2, max_lengths=5, eos_id=EOS)[0][0]
    assert best.tokens == [2]
    assert abs(best.score - (torch.tensor(0.4).log() + torch.tensor(0.9).log()).item()) < 1e-6


def test_beam_one_equals_greedy_on_random_model():
    torch.manual_seed(0)
    weights = torch.randn(6, 6) * 3

    def step(prev_ids, state):
        tokens = torch.cat([state.tokens, prev_ids[:, None]], dim=1)
        logits = weights[prev_ids] + 0.1 * tokens.size(1)
        return torch.log_softmax(logits, dim=-1), Prefix(tokens)

    state, ids = start(3)
    ids = torch.tensor([1, 2, 3])
    greedy = sample(step, state, ids, max_tokens=8, temperature=0, eos_id=EOS)
    beams = beam_search(step, state, ids, beam_size=1, max_lengths=8, eos_id=EOS)
    for row in range(3):
        expected = greedy[row].tolist()
        expected = expected[:expected.index(EOS)] if EOS in expected else expected
        assert beams[row][0].tokens == expected


def test_large_beam_matches_exhaustive_search():
    torch.manual_seed(1)
    vocab, max_len = 4, 4
    tables = {prefix: torch.softmax(torch.randn(vocab) * 2, -1).tolist()
              for length in range(max_len + 1) for prefix in itertools.product(range(1, vocab), repeat=length)}
    step = table_step(tables, vocab)
    state, ids = start()
    best_tokens, best_score = exhaustive_best(tables, vocab, max_len)
    found = beam_search(step, state, ids, beam_size=vocab ** max_len, max_lengths=max_len, eos_id=EOS)[0][0]
    assert found.tokens == best_tokens
    assert abs(found.score - best_score) < 1e-5


def test_beam_with_prefixes_matches_exhaustive_search_over_sequences_that_start_so():
    """Forced prefixes: each row's best hypothesis is the best of all sequences that begin with
    its prefix (exhaustively), scored with the prefix's own log-probabilities; a -1-padded
    shorter prefix and an empty one (all -1) work in the same batch; sampling keeps them too."""
    torch.manual_seed(3)
    vocab, max_len = 4, 4
    tables = {prefix: torch.softmax(torch.randn(vocab) * 2, -1).tolist()
              for length in range(max_len + 1) for prefix in itertools.product(range(1, vocab), repeat=length)}
    step = table_step(tables, vocab)

    def best_starting_with(forced):
        return exhaustive_best(tables, vocab, max_len, lambda sequence: list(sequence[:len(forced)]) == forced)

    forced = [[3, 1], [2, -1], [-1, -1]]
    state, ids = start(3)
    found = beam_search(step, state, ids, beam_size=vocab ** max_len, max_lengths=max_len, eos_id=EOS,
                        prefixes=torch.tensor(forced))
    for row, tokens in enumerate(forced):
        expected_tokens, expected_score = best_starting_with([t for t in tokens if t >= 0])
        assert found[row][0].tokens == expected_tokens
        assert abs(found[row][0].score - expected_score) < 1e-5
    free = beam_search(step, start(1)[0], ids[:1], beam_size=vocab ** max_len, max_lengths=max_len, eos_id=EOS)
    assert free[0][0].tokens == found[2][0].tokens  # no prefix: the unforced search
    drawn = sample(step, state, ids, max_tokens=max_len, eos_id=EOS, prefixes=torch.tensor(forced),
                   generator=torch.Generator().manual_seed(0))
    assert drawn[0, :2].tolist() == [3, 1] and drawn[1, 0].item() == 2


def test_force_tokens_keeps_the_forced_log_probability():
    log_probs = torch.log_softmax(torch.randn(3, 5), dim=-1)
    forced = force_tokens(log_probs, torch.tensor([2, -1, 0]))
    assert torch.equal(forced[1], log_probs[1])
    assert forced[0, 2] == log_probs[0, 2] and torch.isneginf(forced[0]).sum() == 4
    assert forced[2, 0] == log_probs[2, 0] and torch.isneginf(forced[2]).sum() == 4


def test_nbest_are_distinct_and_sorted():
    step = table_step({}, 5)
    state, ids = start()
    hypotheses = beam_search(step, state, ids, beam_size=4, max_lengths=3, eos_id=None, nbest=4)[0]
    assert len({tuple(h.tokens) for h in hypotheses}) == 4
    assert all(len(h.tokens) == 3 for h in hypotheses)
    scores = [h.normalized_score for h in hypotheses]
    assert scores == sorted(scores, reverse=True)


def test_result_does_not_depend_on_batch():
    torch.manual_seed(2)
    weights = torch.randn(7, 7) * 2

    def step(prev_ids, state):
        tokens = torch.cat([state.tokens, prev_ids[:, None]], dim=1)
        return torch.log_softmax(weights[prev_ids] - 0.3 * tokens.size(1) * (torch.arange(7) == 0), -1), Prefix(tokens)

    state, ids = start(4)
    ids = torch.tensor([1, 2, 3, 4])
    together = beam_search(step, state, ids, beam_size=3, max_lengths=torch.tensor([5, 2, 6, 4]), eos_id=EOS, alpha=1.0)
    for row, limit in enumerate([5, 2, 6, 4]):
        alone_state, _ = start(1)
        alone = beam_search(step, alone_state, ids[row:row + 1], beam_size=3, max_lengths=limit, eos_id=EOS, alpha=1.0)
        assert alone[0][0].tokens == together[row][0].tokens
        assert len(together[row][0].tokens) <= limit


def test_length_penalty_matches_gnmt():
    assert length_penalty(1, 0.0) == 1.0
    assert abs(length_penalty(7, 1.0) - 2.0) < 1e-12


def test_top_k_and_top_p_filters():
    log_probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    top_k = filter_log_probs(log_probs, top_k=2)
    assert torch.isfinite(top_k).tolist() == [[True, True, False, False]]
    top_p = filter_log_probs(log_probs, top_p=0.7)
    assert torch.isfinite(top_p).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_log_probs(log_probs, top_p=0.5)).tolist() == [[True, False, False, False]]


def test_sampling_is_reproducible_with_a_seed():
    step = table_step({}, 20)
    state, ids = start(2)
    draws = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(5)
        draws.append(sample(step, state, ids, max_tokens=10, temperature=1.0, generator=generator))
    assert torch.equal(draws[0], draws[1])
    other = sample(step, state, ids, max_tokens=10, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(draws[0], other)


def test_sampling_stops_each_row_at_its_nth_eos():
    """`eos_count`: a row runs on through its first <eos>s, stops at the n-th and is padded with
    <eos> after it; the draws before are those of sampling without a stop."""
    step = table_step({}, 4)  # uniform over 4 tokens, <eos> among them
    state, ids = start(8)
    free = sample(step, state, ids, max_tokens=40, generator=torch.Generator().manual_seed(3))
    stopped = sample(step, state, ids, max_tokens=40, eos_id=EOS, eos_count=3,
                     generator=torch.Generator().manual_seed(3))
    for free_row, row in zip(free.tolist(), stopped.tolist()):
        ends = [position for position, token in enumerate(free_row) if token == EOS]
        assert len(ends) >= 3  # 40 uniform draws over 4 tokens
        third = ends[2]
        assert row[:third + 1] == free_row[:third + 1] and set(row[third:]) == {EOS}
    assert stopped.size(1) == max(
        [position for position, token in enumerate(row) if token == EOS][2] + 1 for row in free.tolist())


def test_sample_scored_gives_each_drawn_token_its_model_log_probability():
    table = {(): [0.1, 0.6, 0.3], (1,): [0.7, 0.2, 0.1], (2,): [0.2, 0.4, 0.4]}
    step = table_step(table, 3)
    state, ids = start(6)
    tokens, log_probs = sample_scored(step, state, ids, max_tokens=4, temperature=0.5, eos_id=EOS,
                                      generator=torch.Generator().manual_seed(2))
    assert torch.equal(tokens, sample(step, state, ids, max_tokens=4, temperature=0.5, eos_id=EOS,
                                      generator=torch.Generator().manual_seed(2)))
    for row, log_prob in zip(tokens.tolist(), log_probs.tolist()):
        for position, token in enumerate(row):
            if EOS in row[:position]:  # after <eos>: padding, scored 0
                assert log_prob[position] == 0.0
            else:  # the model's probability, not the temperature-sharpened one
                probabilities = table.get(tuple(row[:position]), [1 / 3] * 3)
                assert abs(log_prob[position] - math.log(probabilities[token])) < 1e-6


def test_exact_stop_gives_the_results_of_searching_on_in_fewer_steps(monkeypatch):
    """A row stops once no live beam can beat its n best finished hypotheses: the same n-best as
    searching until K hypotheses have ended, for any length penalty, with fewer steps."""
    from lstmnlp import search

    torch.manual_seed(3)
    weights = torch.randn(8, 8) * 2
    calls = []

    def step(prev_ids, state):
        calls.append(prev_ids.numel())
        tokens = torch.cat([state.tokens, prev_ids[:, None]], dim=1)
        eos_bonus = 1.0 * (torch.arange(8) == EOS)  # ends are likely: rows finish at varied lengths
        return torch.log_softmax(weights[prev_ids] + eos_bonus, -1), Prefix(tokens)

    ids = torch.arange(1, 7)
    for alpha, nbest in ((0.0, 1), (1.0, 1), (0.6, 3)):
        def run():
            calls.clear()
            state, _ = start(6)
            found = beam_search(step, state, ids, beam_size=4, max_lengths=12, eos_id=EOS, alpha=alpha, nbest=nbest)
            return [[(h.tokens, round(h.score, 5)) for h in row] for row in found], sum(calls)

        stopped, stopped_rows = run()
        with monkeypatch.context() as patch:
            patch.setattr(search, "_cannot_be_beaten", lambda *args: False)
            searched_on, searched_rows = run()
        assert stopped == searched_on
        assert stopped_rows < searched_rows if nbest == 1 else stopped_rows <= searched_rows


def test_two_stage_top_k_equals_topk():
    """Block maxima first, then a search of the chosen blocks: the same values and indices,
    also when the width is not a multiple of the block and rows hold -inf."""
    torch.manual_seed(3)
    for width in (40_000, 12_345):
        values = torch.randn(6, width) * 3
        values[1, :width // 2] = float("-inf")
        values[2, 7_000:7_010] += 50.0  # the best all in one block
        expected = values.topk(10, dim=-1)
        found_values, found_index = top_k(values, 10)
        assert torch.equal(found_values, expected.values)
        assert torch.equal(found_index, expected.indices)


def test_beam_search_over_a_large_vocabulary_matches_one_stage_top_k(monkeypatch):
    """Beam 5 over 2,000 tokens (top-k over 10,000 candidates per sentence takes two stages):
    the same hypotheses as with plain `topk`, each scored by the sum of its log-probabilities."""
    torch.manual_seed(4)
    vocab = 2_000
    weights = torch.randn(vocab, vocab) * 3

    def step(prev_ids, state):
        tokens = torch.cat([state.tokens, prev_ids[:, None]], dim=1)
        return torch.log_softmax(weights[prev_ids], -1), Prefix(tokens)

    ids = torch.tensor([1, 2, 3])
    search = lambda: beam_search(step, start(3)[0], ids, beam_size=5, max_lengths=4, eos_id=EOS,  # noqa: E731
                                 alpha=1.0, nbest=3)
    two_stage = search()
    monkeypatch.setattr(search_module, "top_k", lambda values, k: values.topk(k, dim=-1))
    assert search() == two_stage
    for row, hypotheses in enumerate(two_stage):
        for hypothesis in hypotheses:
            path = [int(ids[row])] + hypothesis.tokens + ([EOS] if len(hypothesis.tokens) < 4 else [])
            total = sum(float(torch.log_softmax(weights[a], -1)[b]) for a, b in zip(path, path[1:]))
            assert abs(total - hypothesis.score) < 1e-3


def _ngrams(tokens, size):
    return [tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)]


def test_block_repeated_ngrams_bans_what_would_repeat():
    log_probs = torch.zeros(1, 5)
    history = torch.tensor([[1, 2, 3, 1, 2]])
    banned = lambda size: torch.isneginf(search_module.block_repeated_ngrams(log_probs, history, size))[0]
    assert banned(3).nonzero().view(-1).tolist() == [3]  # "1 2" was followed by 3
    assert banned(2).nonzero().view(-1).tolist() == [3]  # "2" was followed by 3
    assert banned(1).nonzero().view(-1).tolist() == [1, 2, 3]  # every token already produced
    assert not banned(6).any()  # no complete 6-gram yet
    stuck = search_module.block_repeated_ngrams(torch.zeros(1, 2), torch.tensor([[1, 0, 1, 1]]), 2)
    assert torch.equal(stuck, torch.zeros(1, 2))  # "1" was followed by 0 and by 1: the row keeps both


def test_greedy_with_ngram_blocking_never_repeats():
    preference = torch.log_softmax(torch.tensor([-9.0, 5.0, 4.0, 3.0, 2.0, 1.0]), dim=-1)

    def step(prev_ids, state):
        return preference.expand(prev_ids.size(0), -1).clone(), state

    state, ids = start(2)
    plain = sample(step, state, ids, max_tokens=8, temperature=0)[0].tolist()
    assert plain == [1] * 8  # what blocking must prevent
    blocked = sample(step, state, ids, max_tokens=8, temperature=0, no_repeat_ngram_size=2)[0].tolist()
    assert blocked[:3] == [1, 1, 2] and len(set(_ngrams(blocked, 2))) == 7
    drawn = sample(step, state, ids, max_tokens=8, temperature=1.0, no_repeat_ngram_size=2,
                   generator=torch.Generator().manual_seed(0))
    assert all(len(set(_ngrams(row, 2))) == 7 for row in drawn.tolist())


def test_beam_search_with_ngram_blocking_matches_exhaustive_search():
    """The best hypothesis is the best sequence holding no bigram twice."""
    torch.manual_seed(2)
    vocab, max_len = 4, 5
    tables = {prefix: torch.softmax(torch.randn(vocab) * 2 + torch.tensor([-3.0, 2.0, 0, 0]), -1).tolist()
              for length in range(max_len + 1) for prefix in itertools.product(range(1, vocab), repeat=length)}
    step = table_step(tables, vocab)
    state, ids = start()

    best = {}
    for size in (0, 2):
        best_tokens, best_score = exhaustive_best(
            tables, vocab, max_len,
            lambda sequence: not size or len(set(_ngrams(sequence, size))) == len(_ngrams(sequence, size)))
        found = beam_search(step, state, ids, beam_size=vocab ** max_len, max_lengths=max_len, eos_id=EOS,
                            no_repeat_ngram_size=size)[0][0]
        assert found.tokens == best_tokens and abs(found.score - best_score) < 1e-5
        best[size] = best_tokens
    assert best[0] != best[2]  # the unconstrained best repeats a bigram: blocking changed the answer
