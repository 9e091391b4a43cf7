import pytest

from benchmarks import loops


def test_rate_without_epoch_starts_drops_the_first_batch_of_each_epoch():
    # Epochs of 3 batches; the call's batches 2..8 take these seconds; batches 4 and 7 start epochs.
    durations = [0.1, 0.1, 5.0, 0.1, 0.1, 7.0, 0.1]
    assert loops.rate_without_epoch_starts(durations, 3) == pytest.approx(5 / 0.5)
    assert loops.rate_without_epoch_starts([0.2, 0.2], 10) == pytest.approx(5.0)
    assert loops.rate_without_epoch_starts([0.5, 0.5], 1) == pytest.approx(2.0)  # all start epochs


def test_calls_split_steps_into_calls_that_end_at_every_refresh():
    assert list(loops._calls(45, 20)) == [20, 20, 5]
    assert list(loops._calls(20, 20)) == [20]
    assert list(loops._calls(45, 20, start=490, every=500)) == [10, 20, 15]
