"""Weight averaging (train.average_decay): the average's arithmetic, and what the Trainer
validates and saves with it."""

from typing import NamedTuple

import torch
from safetensors.torch import load_file
from torch import nn

from lstmnlp.averaging import WeightAverage
from lstmnlp.config import TrainConfig
from lstmnlp.models.outputs import LossOutput
from lstmnlp.train import Trainer


class Batch(NamedTuple):
    inputs: torch.Tensor
    targets: torch.Tensor


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def loss(self, batch, carry=None) -> LossOutput:
        inputs, targets = batch
        loss = ((self.linear(inputs).squeeze(-1) - targets) ** 2).mean()
        return LossOutput(loss, float(loss.detach()) * len(targets), len(targets), None)


def test_average_follows_the_formula_and_swaps_back():
    model = nn.Linear(2, 2)
    average = WeightAverage(model, 0.9)
    expected = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        average.update()
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, model.parameters())]
    raw = [p.detach().clone() for p in model.parameters()]
    with average.applied():
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p.detach(), e)
    for p, r in zip(model.parameters(), raw):
        assert torch.equal(p.detach(), r)


def test_trainer_validates_and_saves_the_average(tmp_path):
    torch.manual_seed(0)
    inputs = torch.randn(8, 3)
    batches = [Batch(inputs, inputs.sum(-1))] * 10
    model = Regression()
    seen = []

    def validate():
        seen.append(model.linear.weight.detach().clone())
        return {"valid_loss": -len(seen)}  # every validation is the best so far

    config = TrainConfig(optimizer="sgd", lr=0.1, warmup_steps=0, schedule="constant", clip_norm=0.0,
                         max_steps=10, eval_every=5, log_every=5, average_decay=0.5)
    trainer = Trainer(model, config, tmp_path, train_batches=lambda epoch: batches, validate=validate)
    trainer.fit()
    assert not torch.equal(seen[-1], model.linear.weight.detach())  # validated weights are not the raw ones
    torch.testing.assert_close(seen[-1], trainer.average.average[0])
    saved = load_file(tmp_path / "model.safetensors")
    torch.testing.assert_close(saved["linear.weight"], trainer.average.average[0])
