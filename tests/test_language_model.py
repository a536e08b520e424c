import pytest
import torch

from lstmnlp.checkpoint import load_weights, save_weights
from lstmnlp.config import ModelConfig, TrainConfig
from lstmnlp.lm_data import TextStream, batchify, decode_ids, encode_text, text_beside, windows
from lstmnlp.models.language_model import LanguageModel, LanguageModelBatch
from lstmnlp.optimization import lr_factor
from lstmnlp.tokenizer import Tokenizer, train_tokenizer
from lstmnlp.train import Trainer

from conftest import overfit


def tiny_model(**options) -> LanguageModel:
    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=16, hidden_size=32, num_layers=2, dropout=0.0, **options)
    return LanguageModel(config, vocab_size=12)


def test_overfits_one_batch():
    for options in ({}, {"tie_weights": True}, {"peephole": True}, {"weight_dropout": 0.1}):
        model = tiny_model(**options)
        torch.manual_seed(1)
        ids = torch.randint(4, 12, (4, 17))
        batch = LanguageModelBatch(ids[:, :-1], ids[:, 1:])
        first, last = overfit(model, batch, steps=150, lr=0.01)
        assert last < 0.1 * first, options


def test_weight_tying_shares_one_matrix():
    model = tiny_model(tie_weights=True)
    assert model.output.weight.data_ptr() == model.encoder.embedding.weight.data_ptr()
    assert model.projection is not None  # hidden 32 != embedding 16


def test_save_load_gives_identical_logits(tmp_path):
    model = tiny_model(tie_weights=True).eval()
    ids = torch.randint(4, 12, (2, 9))
    expected, _ = model(ids)
    save_weights(model, tmp_path / "w.safetensors")
    other = tiny_model(tie_weights=True)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(1.0)
    load_weights(other, tmp_path / "w.safetensors")
    actual, _ = other.eval()(ids)
    assert torch.equal(actual, expected)


def test_tbptt_state_carried_and_detached():
    model = tiny_model()
    ids = torch.randint(4, 12, (3, 20))
    first = model.loss(LanguageModelBatch(ids[:, :10], ids[:, 1:11]))
    assert first.carry.hidden.requires_grad  # still attached: the Trainer detaches it
    carried = first.carry.detach()
    assert carried.hidden.grad_fn is None and not carried.hidden.requires_grad
    second = model.loss(LanguageModelBatch(ids[:, 10:19], ids[:, 11:20]), carried)
    fresh = model.loss(LanguageModelBatch(ids[:, 10:19], ids[:, 11:20]))
    assert second.total != fresh.total  # the carried state changes the predictions
    second.loss.backward()  # does not reach into the first window's graph
    # read back once per log line by the Trainer, not here: a tensor, detached
    assert isinstance(second.total, torch.Tensor) and not second.total.requires_grad
    assert float(second.total) == pytest.approx(float(second.loss.detach()) * second.count, rel=1e-5)


class RecordingModel(torch.nn.Module):
    """Wraps an LM and records the carry the Trainer passes in."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.carries = []

    def loss(self, batch, carry=None):
        self.carries.append(carry)
        return self.model.loss(batch, carry)


def test_trainer_carries_detached_state_across_windows(tmp_path):
    model = RecordingModel(tiny_model())
    streams = batchify(torch.randint(4, 12, (400,)), 4)
    config = TrainConfig(max_steps=6, eval_every=100, warmup_steps=0, log_every=2)
    trainer = Trainer(model, config, tmp_path, train_batches=lambda epoch: windows(streams, 20),
                      validate=lambda: {"valid_loss": 1.0})
    result = trainer.fit()
    assert result.steps == 6
    # 99 target columns / 20 = 5 windows an epoch: the state is reset when a new epoch starts.
    assert model.carries[0] is None and model.carries[5] is None
    assert all(c is not None and c.hidden.grad_fn is None for c in model.carries[1:5])
    records = (tmp_path / "metrics.jsonl").read_text().strip().splitlines()
    assert len(records) == 4  # steps 2, 4, 6 and the final validation
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "last.safetensors").is_file()


def test_windows_cover_the_stream():
    stream = torch.arange(101)
    streams = batchify(stream, 4)  # (4, 25)
    targets = torch.cat([b.targets for b in windows(streams, 7)], dim=1)
    inputs = torch.cat([b.inputs for b in windows(streams, 7)], dim=1)
    assert torch.equal(targets, streams[:, 1:]) and torch.equal(inputs, streams[:, :-1])


def test_text_stream_round_trip_with_line_breaks(tmp_path):
    (tmp_path / "t.txt").write_text("To be, or not to be:\nthat is the question.\n\nWhether 'tis nobler\n")
    tokenizer = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "sp", vocab_size=100,
                                          model_type="char", character_coverage=1.0).model_path)
    text = "To be, or not\n\nthat is.\n"
    ids = encode_text(tokenizer, text)
    assert ids.numel() == len(text)  # one token per character, line breaks included
    assert decode_ids(tokenizer, ids.tolist()) == text
    backward = encode_text(tokenizer, text, backward=True)  # a backward LM reads from the end
    assert decode_ids(tokenizer, backward[:4].tolist()) == "\n.si" and torch.equal(backward, ids.flip(0))
    assert decode_ids(tokenizer, backward.tolist(), backward=True) == text


@pytest.mark.parametrize("model_type", ["char", "unigram"])
def test_streamed_text_adds_up_to_the_decoded_ids(tmp_path, model_type):
    """generate's streaming decodes only the current line at each token; what it emits, joined,
    is decode_ids of all the ids, for any sequence of ids, multi-byte characters included."""
    (tmp_path / "t.txt").write_text("To be, or not to be: ça, été?\nthat is the question.\n\nWhether 'tis nobler\n" * 5)
    byte_fallback = model_type == "unigram"  # unknown characters as UTF-8 bytes: the multi-byte case
    size = 291 if byte_fallback else 60  # 291: 256 bytes and every character, the most this text allows
    tokenizer = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "sp", vocab_size=size,
                                          model_type=model_type, byte_fallback=byte_fallback).model_path)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids = torch.randint(3, tokenizer.vocab_size, (60,), generator=generator).tolist()
        ids[::7] = [tokenizer.eos_id] * len(ids[::7])
        stream = TextStream(tokenizer)
        assert "".join(stream.push(token) for token in ids) + stream.finish() == decode_ids(tokenizer, ids)
        context = ids[1:6]  # a prompt's last line: streamed text continues it, as text_beside reads
        stream = TextStream(tokenizer, context)
        streamed = "".join(stream.push(token) for token in ids) + stream.finish()
        assert streamed == text_beside(tokenizer, context, ids)


def test_text_beside_keeps_the_space_after_and_before_the_prompt(tmp_path):
    (tmp_path / "t.txt").write_text("the film is good\na great movie\n" * 20)
    tokenizer = Tokenizer(train_tokenizer([tmp_path / "t.txt"], tmp_path / "sp", vocab_size=20,
                                          model_type="unigram").model_path)
    prompt, new = tokenizer.encode("the film"), tokenizer.encode("is good")
    assert decode_ids(tokenizer, new) == "is good"  # decoded alone, the space before "is" is lost
    assert text_beside(tokenizer, prompt, new) == " is good"
    assert text_beside(tokenizer, new, tokenizer.encode("a great movie")[::-1], backward=True) == "a great movie "


def test_int8_language_model_steps_close_to_float():
    """generate/score --quantize int8: log-probabilities within quantization error of float."""
    import copy

    from lstmnlp.quantize import quantize_int8
    model = tiny_model(tie_weights=True).eval()
    quantized = quantize_int8(copy.deepcopy(model))
    ids = torch.randint(4, 12, (3, 9))
    float_state, int8_state = model.initial_state(3), quantized.initial_state(3)
    for position in range(ids.size(1)):
        float_log_probs, float_state = model.step(ids[:, position], float_state)
        int8_log_probs, int8_state = quantized.step(ids[:, position], int8_state)
        torch.testing.assert_close(int8_log_probs, float_log_probs, atol=0.05, rtol=0)


def test_cosine_schedule_with_warmup():
    config = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(config, 0, 0.0, 1.0) == 0.1
    assert lr_factor(config, 50, 0.0, 1.0) == 1.0
    assert abs(lr_factor(config, 50, 1.0, 1.0) - 0.1) < 1e-12
    assert abs(lr_factor(config, 50, 0.5, 1.0) - 0.55) < 1e-12


def test_optimizer_takes_configured_beta2():
    from lstmnlp.optimization import make_optimizer

    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model, TrainConfig(optimizer="adamw", adam_beta2=0.99, weight_decay=0.1))
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    assert optimizer.param_groups[0]["weight_decay"] == 0.1


def test_precision_choice():
    from lstmnlp.precision import native_bf16, use_bf16

    cpu = torch.device("cpu")
    native = bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert native_bf16(cpu) == native and use_bf16("auto", cpu) == native
    assert not use_bf16("fp32", cpu)
    if native:
        assert use_bf16("bf16", cpu)


def test_bf16_refused_on_a_cpu_without_it(monkeypatch, tmp_path):
    """oneDNN's LSTM kernel cannot run bf16 on, say, an AVX2-only CPU: one clear line, exit 2."""
    from typer.testing import CliRunner

    from lstmnlp import precision
    from lstmnlp.cli import app

    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert not precision.use_bf16("auto", torch.device("cpu"))
    result = CliRunner().invoke(app, ["train", "--set", "train.precision=bf16", "--set", "train.max_steps=1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "no native bf16" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_fp16_refused_on_a_cpu(tmp_path):
    """fp16 autocast with loss scaling is for CUDA GPUs; on a CPU: one line, exit 2, no run directory."""
    from typer.testing import CliRunner

    from lstmnlp.cli import app

    result = CliRunner().invoke(app, ["train", "--set", "train.precision=fp16", "--set", "train.device=cpu",
                                      "--set", "train.max_steps=1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "fp16 is for CUDA" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
