"""``Speed.through``: the speed line refit through one measured step of the model a plan will train."""

from __future__ import annotations

import pytest

from phonetune.model.speed import MAX_REFIT, Speed

PROBE = Speed(fixed=4e-7, per_param=5e-11, device="cpu", per_step=2e-3, threads=2)


def _step(speed: Speed, params: int, batch: int) -> float:
    return speed.seconds_per_frame(params, batch) * batch


def test_the_refit_line_prices_the_measured_model_as_measured_and_keeps_what_the_small_probe_measured():
    params, batch = 2_300_000, 1024
    measured = 1.36 * _step(PROBE, params, batch)  # the resized expert recipe under bf16 on the development machine
    refit = PROBE.through(params, batch, measured)
    assert _step(refit, params, batch) == pytest.approx(measured, rel=1e-12)
    assert (refit.fixed, refit.per_step, refit.device, refit.threads) == (4e-7, 2e-3, "cpu", 2)
    assert refit.per_param > PROBE.per_param
    # A model the line priced too slow is priced faster.
    faster = PROBE.through(params, batch, 0.8 * _step(PROBE, params, batch))
    assert _step(faster, params, batch) == pytest.approx(0.8 * _step(PROBE, params, batch), rel=1e-12)


def test_a_step_far_off_the_probe_moves_the_slope_by_at_most_max_refit():
    params, batch = 2_300_000, 1024
    assert PROBE.through(params, batch, 10 * _step(PROBE, params, batch)).per_param == pytest.approx(
        MAX_REFIT * PROBE.per_param)
    # Faster than the per-frame and per-step costs alone allow (a negative slope): the floor, not a sign flip.
    assert PROBE.through(params, batch, 1e-6).per_param == pytest.approx(PROBE.per_param / MAX_REFIT)


@pytest.mark.parametrize("params, batch, seconds", [(0, 1024, 0.1), (1000, 0, 0.1), (1000, 1024, 0.0)])
def test_a_measurement_that_is_not_one_is_refused_by_name(params, batch, seconds):
    with pytest.raises(ValueError, match=f"params={params}, batch_size={batch}, step_seconds={seconds}"):
        PROBE.through(params, batch, seconds)
