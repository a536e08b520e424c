"""Batches go to the device one ahead, in order, each exactly once."""

from typing import NamedTuple

import torch

from lstmnlp.device_batches import one_ahead, to_device


class Pair(NamedTuple):
    ids: torch.Tensor
    lengths: torch.Tensor


def test_each_batch_is_moved_before_the_previous_one_is_handed_out():
    events = []

    def move(batch):
        events.append(("moved", batch))
        return batch * 10

    for batch in one_ahead(iter([1, 2, 3]), move):
        events.append(("trained", batch))
    assert events == [("moved", 1), ("moved", 2), ("trained", 10), ("moved", 3), ("trained", 20), ("trained", 30)]
    assert list(one_ahead([], move)) == []


def test_cpu_batches_pass_through_unchanged():
    batch = Pair(torch.arange(6).view(2, 3), torch.tensor([3, 2]))
    moved = to_device(torch.device("cpu"))(batch)
    assert type(moved) is Pair and moved.ids is batch.ids and moved.lengths is batch.lengths


def test_lengths_stay_on_the_host_where_the_rest_moves():
    batch = Pair(torch.arange(6).view(2, 3), torch.tensor([3, 2]))
    moved = to_device(torch.device("meta"))(batch)  # a device without storage stands in for a GPU
    assert moved.ids.device.type == "meta" and moved.lengths.device.type == "cpu"
    assert torch.equal(moved.lengths, batch.lengths)
