"""How the Trainer makes an update: gradient accumulation (train.accumulate: N batches make one
update, as one N-times larger batch) and fp16 loss scaling (train.precision: fp16)."""

import pytest
import torch

from lstmnlp import train
from lstmnlp.config import TrainConfig
from lstmnlp.train import Trainer
from test_averaging import Batch, Regression


def _fit(batches: list[Batch], tmp_path, **options) -> tuple[torch.Tensor, Trainer]:
    tmp_path.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = Regression()
    # fp32 unless a test asks: `auto` would take bf16 on a CPU with native bf16, whose rounding
    # differs between two batches and their concatenation (4e-4 here)
    options = {"precision": "fp32", **options}
    config = TrainConfig(optimizer="sgd", lr=0.1, warmup_steps=0, schedule="constant", clip_norm=0.0,
                         eval_every=1000, log_every=1000, **options)
    trainer = Trainer(model, config, tmp_path, train_batches=lambda epoch: batches,
                      validate=lambda: {"valid_loss": 0.0})
    trainer.fit()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), trainer


def test_accumulated_batches_update_as_one_larger_batch(tmp_path):
    torch.manual_seed(1)
    small = [Batch(torch.randn(4, 3), torch.randn(4)) for _ in range(6)]
    large = [Batch(torch.cat([a.inputs, b.inputs]), torch.cat([a.targets, b.targets]))
             for a, b in zip(small[0::2], small[1::2])]
    accumulated, trainer = _fit(small, tmp_path / "a", accumulate=2, max_steps=3)
    plain, _ = _fit(large, tmp_path / "b", max_steps=3)
    one_by_one, _ = _fit(small, tmp_path / "c", max_steps=3)
    torch.testing.assert_close(accumulated, plain)
    assert not torch.allclose(accumulated, one_by_one)  # three updates of one batch differ
    assert trainer.position.step == 3 and trainer.position.batch == 6


def test_an_epoch_ends_with_a_shorter_group(tmp_path):
    """Three batches an epoch, two an update: the third makes an update alone, then a new epoch."""
    torch.manual_seed(2)
    batches = [Batch(torch.randn(4, 3), torch.randn(4)) for _ in range(3)]
    _, trainer = _fit(batches, tmp_path, accumulate=2, max_epochs=2)
    assert trainer.position.step == 4 and trainer.position.epoch == 2


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    """fp16 is refused on a CPU (the LSTM kernel has none), but a Linear model runs it: the
    scaler's path is tested here with the refusal bypassed."""
    monkeypatch.setattr(train, "autocast_dtype", lambda precision, device: torch.float16)


def test_fp16_scales_the_loss_and_tracks_fp32(tmp_path, fp16_on_cpu):
    torch.manual_seed(3)
    # small values: at the scaler's first scale (65536) no scaled gradient leaves fp16's range
    batches = [Batch(torch.randn(8, 3) * 0.1, torch.randn(8) * 0.1) for _ in range(4)]
    scaled, trainer = _fit(batches, tmp_path / "a", max_steps=8, precision="fp16")
    assert trainer.scaler is not None and trainer.scaler.get_scale() == 65536.0  # no overflow: scale kept
    state = torch.load(tmp_path / "a" / "trainer_state.pt", weights_only=True)
    assert state["scaler"]["scale"] == 65536.0
    plain, _ = _fit(batches, tmp_path / "b", max_steps=8, precision="fp32")
    torch.testing.assert_close(scaled, plain, atol=2e-3, rtol=2e-3)  # fp16 products, fp32 master weights


def test_fp16_skips_an_overflowing_step_and_lowers_the_scale(tmp_path, fp16_on_cpu):
    torch.manual_seed(4)
    huge = Batch(torch.randn(8, 3), torch.full((8,), 1e6))  # its scaled fp16 gradients overflow
    tmp_path.mkdir(exist_ok=True)
    model = Regression()
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(optimizer="sgd", lr=0.1, warmup_steps=0, schedule="constant", clip_norm=1.0,
                         eval_every=1000, log_every=1000, max_steps=1, precision="fp16")
    trainer = Trainer(model, config, tmp_path, train_batches=lambda epoch: [huge],
                      validate=lambda: {"valid_loss": 0.0})
    trainer.fit()
    assert all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))  # step skipped
    assert trainer.scaler.get_scale() < 65536.0
    resumed = Trainer(Regression(), config, tmp_path, train_batches=lambda epoch: [huge],
                      validate=lambda: {"valid_loss": 0.0})
    resumed._restore()  # what --resume loads: the lowered scale too
    assert resumed.scaler.get_scale() == trainer.scaler.get_scale()
