import pytest

from streamguard.train.schedule import lr_scale


def test_linear_warmup_then_linear_decay_to_zero() -> None:
    # 4 warm-up steps of 10: 1/4, 2/4, 3/4, 4/4, then (10 - step) / 6 down to 1/6 at the last step
    scales = [lr_scale(s, 4, 10, "linear") for s in range(10)]
    assert scales == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert lr_scale(10, 4, 10, "linear") == 0.0 and lr_scale(50, 4, 10, "linear") == 0.0


def test_warmup_only_for_plateau_and_none() -> None:
    for sched in ("plateau", "none"):
        assert [lr_scale(s, 2, 100, sched) for s in range(4)] == [0.5, 1.0, None, None]


def test_no_warmup() -> None:
    assert lr_scale(0, 0, 5, "linear") == 1.0 and lr_scale(4, 0, 5, "linear") == pytest.approx(0.2)
    assert lr_scale(0, 0, 5, "plateau") is None
