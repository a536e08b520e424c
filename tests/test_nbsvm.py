"""NBSVM (Wang & Manning 2012) and its mix into a classifier's probabilities."""

import pytest
import torch

from lstmnlp.errors import UserError
from lstmnlp.nbsvm import (char_ngrams, fit_nbsvm, load_nbsvm, mixed, pick_mix, pick_temperature,
                           text_ngrams, word_ngrams)

GOOD = ["a great film", "great acting , great fun", "simply great", "a great , warm story", "great"]
BAD = ["a dull film", "dull acting and dull fun", "simply dull", "a dull , cold story", "dull"]


def test_word_ngrams_up_to_the_order():
    assert word_ngrams("a b c", 1) == {"a", "b", "c"}
    assert word_ngrams("a b c", 2) == {"a", "b", "c", "a b", "b c"}
    assert word_ngrams("a b a b", 3) == {"a", "b", "a b", "b a", "a b a", "b a b"}
    assert word_ngrams("", 2) == set()


def test_char_ngrams_see_word_edges_and_are_marked():
    expected = (" a", "ab", "b ", " c", "c ", " ab", "ab ", "b c", " c ")
    assert char_ngrams("ab  c", 3) == {"\t" + gram for gram in expected}
    assert text_ngrams("ab c", 1) == {"ab", "c"}
    both = text_ngrams("ab c", 2, char_order=2)
    assert both == {"ab", "c", "ab c"} | char_ngrams("ab c", 2)
    assert not any(gram.startswith("\t") for gram in word_ngrams("ab c", 2))  # the tab keeps them apart


def test_char_ngrams_read_words_never_seen():
    """Words only, an unseen word is just the bias; character n-grams read "greatest" as "great"."""
    texts, labels = GOOD + BAD, [1] * 5 + [0] * 5
    words = fit_nbsvm(texts, labels, 2, order=1)
    chars = fit_nbsvm(texts, labels, 2, order=1, char_order=4)
    unseen = ["greatest", "dullest"]
    assert torch.equal(words.margins(unseen)[:, 1], words.bias[1].expand(2))
    margins = chars.margins(unseen)[:, 1]
    assert margins[0] > 0 > margins[1]


def test_binary_fit_separates_and_mirrors():
    model = fit_nbsvm(GOOD + BAD, [1] * 5 + [0] * 5, 2, order=2)
    margins = model.margins(["a great story", "a dull story", "words never seen"])
    assert margins[0, 1] > 0 > margins[1, 1]  # the class-1 SVM reads "great" as class 1
    assert torch.equal(margins[:, 0], -margins[:, 1])  # class 0 against the rest: every sign turned
    assert margins[2, 1] == pytest.approx(float(model.bias[1]))  # no known n-gram: the bias alone


def test_svm_fit_reaches_the_minimum_of_its_objective():
    """The SVM's hand-written gradient checked by autograd: at the weights found, the gradient of
    1/2 |w|^2 / (C N) + mean(max(0, 1 - y (X w + b))^2) is near zero."""
    from lstmnlp.nbsvm import _squared_hinge_svm

    generator = torch.Generator().manual_seed(0)
    dense = (torch.rand(40, 30, generator=generator) < 0.2).float()
    target = torch.where(torch.rand(40, generator=generator) < 0.5, -1.0, 1.0)
    ratios = torch.randn(30, generator=generator)
    weights, bias = _squared_hinge_svm(dense.to_sparse().coalesce(), ratios, target, 1.0, 500)
    weights, bias = weights.clone().requires_grad_(), torch.tensor([bias], requires_grad=True)
    margins = (dense * ratios) @ weights + bias
    loss = 0.5 * weights.pow(2).sum() / 40 + (1 - target * margins).clamp(min=0).pow(2).mean()
    loss.backward()
    assert weights.grad.abs().max() < 1e-4 and bias.grad.abs().max() < 1e-4
    assert float(loss.detach()) < 1.0  # and it is not the zero start (whose loss is 1)


def test_three_classes_one_against_the_rest():
    neutral = ["an ordinary film", "ordinary acting", "simply ordinary", "an ordinary story", "ordinary"]
    model = fit_nbsvm(GOOD + BAD + neutral, [0] * 5 + [1] * 5 + [2] * 5, 3, order=1)
    margins = model.margins(["great", "dull", "ordinary"])
    assert margins.argmax(-1).tolist() == [0, 1, 2]


def test_mix_is_softmax_of_log_probabilities_plus_margins():
    probabilities = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    margins = torch.tensor([[-1.0, 1.0], [0.5, -0.5]])
    assert torch.allclose(mixed(probabilities, margins, 0.0), probabilities)
    expected = torch.softmax(probabilities.log() + 2.0 * margins, dim=-1)
    assert torch.allclose(mixed(probabilities, margins, 2.0), expected)
    cooler = torch.softmax((probabilities.log() + 2.0 * margins) / 4.0, dim=-1)
    assert torch.allclose(mixed(probabilities, margins, 2.0, temperature=4.0), cooler)


def test_temperature_calibrates_overconfident_mixes():
    """Sharp scores right 3 times in 4: a temperature above 1 lowers the NLL, and never the accuracy."""
    probabilities = torch.full((4, 2), 0.5)
    margins = torch.tensor([[5.0, -5.0]] * 4)
    gold = [0, 0, 0, 1]
    temperature, nll = pick_temperature(probabilities, margins, 1.0, gold)
    sharp = -torch.log(mixed(probabilities, margins, 1.0)[torch.arange(4), torch.tensor(gold)]).mean()
    assert temperature > 1.0 and nll < float(sharp)
    assert nll == pytest.approx(-(3 * torch.log(torch.tensor(0.75)) + torch.log(torch.tensor(0.25))).item() / 4,
                                abs=0.01)  # the calibrated confidence is near the 3-in-4 rate
    assert torch.equal(mixed(probabilities, margins, 1.0, temperature).argmax(-1), margins.argmax(-1))


def test_pick_mix_follows_the_validation_data():
    gold = [0, 1, 0, 1]
    right = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    wrong = right.flip(-1)
    helpful = torch.tensor([[3.0, -3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, 3.0]])
    assert pick_mix(right, -helpful, gold) == (0.0, 100.0)  # margins only mislead: the BiLSTM alone
    mix, accuracy = pick_mix(wrong, helpful, gold)
    assert accuracy == 100.0 and mix == 0.5  # the grid's smallest weight with 6 * mix > log(0.9 / 0.1)


def test_save_and_load_keep_margins(tmp_path):
    model = fit_nbsvm(GOOD + BAD, [1] * 5 + [0] * 5, 2, order=2)
    model.mix, model.temperature = 4.0, 2.5
    assert load_nbsvm(tmp_path) is None
    model.save(tmp_path)
    loaded = load_nbsvm(tmp_path)
    texts = ["a great story", "dull , dull fun", "nothing known"]
    assert loaded.mix == 4.0 and loaded.temperature == 2.5 and loaded.order == 2
    assert torch.equal(loaded.margins(texts), model.margins(texts))
    with_chars = fit_nbsvm(GOOD + BAD, [1] * 5 + [0] * 5, 2, order=1, char_order=3)
    (tmp_path / "chars").mkdir()
    with_chars.save(tmp_path / "chars")
    loaded = load_nbsvm(tmp_path / "chars")
    assert loaded.char_order == 3 and torch.equal(loaded.margins(texts), with_chars.margins(texts))
    (tmp_path / "nbsvm-ngrams.txt").write_text("great\n", encoding="utf-8")
    with pytest.raises(UserError, match="n-grams for"):
        load_nbsvm(tmp_path)
    weights = tmp_path / "nbsvm.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(UserError, match="damaged NBSVM files"):
        load_nbsvm(tmp_path)


def test_fit_and_margins_do_not_depend_on_the_hash_seed():
    """Python's set order changes with each process's hash seed; the n-gram vocabulary and the
    margins must not (a cross-validation's folds gave other accuracies from one run to the next)."""
    import subprocess
    import sys

    script = ("import sys, torch; from lstmnlp.nbsvm import fit_nbsvm; "
              f"texts = {GOOD + BAD!r} * 3; model = fit_nbsvm(texts, ([1] * 5 + [0] * 5) * 3, 2, order=2, char_order=4); "
              "sys.stdout.write(repr((list(model.vocabulary)[:50], model.margins(texts).tolist())))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3")}
    assert len(outputs) == 1
