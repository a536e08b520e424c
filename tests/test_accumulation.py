"""Gradient accumulation (train.accumulate): N batches make one update, as one N-times larger batch."""

import torch

from lstmnlp.config import TrainConfig
from lstmnlp.train import Trainer
from test_averaging import Batch, Regression


def _fit(batches: list[Batch], tmp_path, **options) -> tuple[torch.Tensor, Trainer]:
    tmp_path.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = Regression()
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
