"""Pictures: recomputed gates match the fused LSTM, features, `plot` and `inspect` on an LM run."""

import sys

import pytest
import torch

from conftest import assert_user_error, run_cli
from lstmnlp.config import ModelConfig
from lstmnlp.errors import UserError
from lstmnlp.inspection import inspect_language_model, token_features
from lstmnlp.lm_data import encode_text
from lstmnlp.models.language_model import LanguageModel
from lstmnlp.modules.gates import trace_gates
from lstmnlp.tokenizer import Tokenizer, train_tokenizer


@pytest.mark.parametrize("options", [{}, {"peephole": True}])
def test_recomputed_gates_match_the_encoder(options):
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0, **options),
                          vocab_size=30).eval()
    if options:
        with torch.no_grad():
            for layer in model.encoder.layers:
                layer.peephole.uniform_(-0.5, 0.5)
    ids = torch.randint(4, 30, (40,))
    traces = trace_gates(model.encoder, ids)
    encoded = model.encoder(ids[None])
    torch.testing.assert_close(traces[-1].hidden, encoded.outputs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(traces[-1].cell[-1], encoded.final.cell[-1, 0], atol=1e-5, rtol=0)
    assert all(0 <= float(t.forget_gate.min()) and float(t.forget_gate.max()) <= 1 for t in traces)


def test_backward_model_traces_come_back_in_text_order(tmp_path):
    """A backward LM reads the text from its end: the trace at the first character is the state
    after reading everything, the one at the last character after reading that character alone."""
    (tmp_path / "t.txt").write_text("to be or not to be\nthat is the question\n")
    tokenizer = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "sp", vocab_size=30,
                                          model_type="char").model_path)
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0),
                          vocab_size=tokenizer.vocab_size).eval()
    text = "to be\nor not"
    report = inspect_language_model(model, tokenizer, text, layer=1, backward=True)
    assert "".join(report.tokens) == text
    read = model.encoder(encode_text(tokenizer, text, backward=True)[None]).outputs[0]  # (T, H), end first
    torch.testing.assert_close(report.traces[1].hidden, read.flip(0), atol=1e-5, rtol=0)


def test_token_features():
    features = token_features(list('ab "cd" (e)\nf'))
    assert features["inside quotes"] == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert features["inside brackets"] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert features["position in line"][:3] == [0, 1, 2] and features["position in line"][-1] == 0


def test_plot_curves_of_two_runs(tiny_lm_run, tmp_path):
    out = tmp_path / "curves.png"
    result = run_cli("plot", str(tiny_lm_run), str(tiny_lm_run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "valid_ppl" in result.stdout
    assert_user_error(run_cli("plot", str(tmp_path)), "metrics.jsonl")
    assert_user_error(run_cli("plot", str(tmp_path / "gone")), "run directory not found")
    # A name without a suffix gets the .png that matplotlib adds, and the message names that file.
    bare = run_cli("plot", str(tiny_lm_run), "--out", str(tmp_path / "bare"))
    assert bare.returncode == 0 and (tmp_path / "bare.png").is_file() and "bare.png:" in bare.stdout


def test_inspect_language_model_units(tiny_lm_run, shakespeare_slice, tmp_path):
    out = tmp_path / "units.html"
    result = run_cli("inspect", str(tiny_lm_run), "--text-file", str(shakespeare_slice / "input.txt"),
                     "--max-tokens", "800", "--units", "6", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" in page and "http" not in page.split("<body>")[1]
    assert page.count("<option value=") == 6
    assert "position in line" in result.stdout and "inside quotes" in result.stdout
    assert_user_error(run_cli("inspect", str(tiny_lm_run), "--text", "x", "--layer", "3"), "--layer")
    assert_user_error(run_cli("inspect", str(tiny_lm_run), "--text", " "), "--text is empty")


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    from lstmnlp import plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UserError, match=r"pip install 'lstmnlp\[plot\]'"):
        plots.pyplot()


def test_help_reflows_docstring_paragraphs():
    """A command's help joins its docstring's lines into paragraphs (no break mid-sentence)."""
    result = run_cli("inspect", "--help")
    assert result.returncode == 0, result.stderr
    assert "cell states per unit (HTML or PNG) and the units" in result.stdout
    listing = run_cli("--help").stdout
    assert "Continue a prompt with a trained language model, streaming the text; or complete each line of --input." \
        in listing
