import pytest

from models.ema import WeightAverage


def _model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def test_average_follows_the_weights_at_its_decay_and_copies_integer_buffers():
    import torch

    model = _model()
    start = model[0].weight.detach().clone()
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    average.update(model)  # first update: decay min(0.5, 2/11)
    expected = start * (2 / 11) + (start + 1.0) * (9 / 11)
    assert torch.allclose(average.shadow["0.weight"], expected)
    assert int(average.shadow["1.num_batches_tracked"]) == 7
    for _ in range(50):
        average.update(model)
    assert torch.allclose(average.shadow["0.weight"], start + 1.0, atol=1e-6)


def test_applied_swaps_the_average_in_and_restores_the_weights_even_on_error():
    import torch

    model = _model()
    average = WeightAverage(model, decay=0.9)
    own = model[0].weight.detach().clone()
    average.shadow["0.weight"].fill_(3.0)
    with pytest.raises(RuntimeError), average.applied(model):
        assert torch.all(model[0].weight == 3.0)
        raise RuntimeError("evaluation failed")
    assert torch.equal(model[0].weight, own)


def test_state_round_trips():
    model = _model()
    average = WeightAverage(model, decay=0.9)
    average.update(model)
    other = WeightAverage(_model(), decay=0.1)
    other.load_state_dict(average.state_dict())
    assert (other.decay, other.updates) == (0.9, 1)
