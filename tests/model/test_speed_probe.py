"""``measure_relative_step``: a run's step timed in rounds beside the probe's large model, on a real split."""

from __future__ import annotations

import pytest

from phonetune.data_pipeline import DataConfig
from phonetune.data_pipeline.load import load_training_data
from phonetune.model import ModelConfig, ModelIO, RunConfig, TrainConfig, count_params
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import BATCH, LARGE, measure_relative_step, probed_reference_step_s


@pytest.fixture(autouse=True)
def one_thread(single_torch_thread):
    """Both models train in this process."""


def _run_config(root, width: int, batch: int) -> RunConfig:
    data = DataConfig(root=str(root), context_frames=LARGE[1], cache_dir=str(root / ".cache"))
    model = ModelConfig(hidden_layers=3, base_width=width, activation="gelu", batchnorm="after", dropout=0.1)
    return RunConfig(data, model, TrainConfig(batch_size=batch, device="cpu"))


def test_a_step_is_priced_from_its_ratio_to_the_reference_and_the_faster_of_the_references_two_timings(
        tiny_corpus):
    small = _run_config(tiny_corpus.root, 32, 256)
    train = load_training_data(small.data, progress=False).train
    step = measure_relative_step(small, train, seconds=0.6, rounds=3)
    # The reference is the probe's large model at the probe's batch, and its timing is a whole step of it.
    large, context = LARGE
    assert step.reference_batch == BATCH and step.reference_params == count_params(
        large, ModelIO((2 * context + 1) * train.feature_width, 40))
    # A 30k-parameter model at a quarter of the batch against a 1.3M one: each step well under the reference's
    # (a per-frame figure mistaken for a step, or the batches swapped, would miss by a factor of 256 or more).
    assert 0 < step.relative < 0.8 and step.run_step_s < step.reference_step_s

    # Priced at the machine's own speed: the ratio times the faster of the reference's two timings, the probe's
    # (kept in its Speed) and the one just made.
    now = step.reference_step_s
    for probed, used in ((now, now), (2 * now, now), (now / 2, now / 2)):
        speed = Speed(fixed=1e-7, per_param=1e-11, device="cpu", reference_step_s=probed)
        assert probed_reference_step_s(speed) == probed
        assert step.priced_step_s(speed) == pytest.approx(step.relative * used, rel=1e-12)
    # A speed kept before the probe recorded its timing: its line's price for the reference (28 mel channels).
    line_only = Speed(fixed=0.0, per_param=now / 4 / BATCH / step.reference_params, device="cpu")
    assert step.priced_step_s(line_only) == pytest.approx(step.relative * now / 4, rel=1e-12)


def test_no_round_is_refused_by_name(tiny_corpus):
    config = _run_config(tiny_corpus.root, 32, 256)
    train = load_training_data(config.data, progress=False).train
    with pytest.raises(ValueError, match="rounds=0"):
        measure_relative_step(config, train, rounds=0)
