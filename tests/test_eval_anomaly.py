"""benchmarks/eval_anomaly.py's NAB-style score: the standard profile's arithmetic on cases
whose value follows from NAB's definitions (Lavin & Ahmad 2015)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ev():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("eval_anomaly",
                                                  ROOT / "benchmarks" / "eval_anomaly.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["eval_anomaly"] = mod
    spec.loader.exec_module(mod)
    return mod


STEP = 300.0
AT = np.arange(1001) * STEP  # one entity spanning 1 000 steps: its window is 100 steps wide
EVENT = (0, 600 * STEP, 600 * STEP)  # the window: cycles 550 .. 650
NONE = np.zeros((1, len(AT)), dtype=bool)


def _score(ev, hits: list[int]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    s = np.zeros((1, len(AT)))
    s[0, hits] = 1.0
    return ev.nab_score(s, AT, [EVENT], NONE)


def test_detection_at_the_window_start_is_perfect_and_none_is_zero(ev) -> None:  # type: ignore[no-untyped-def]
    assert _score(ev, [550])[0] == pytest.approx(100.0)
    # A score that never rises: the best threshold detects nothing (or everything equally).
    assert ev.nab_score(np.zeros((1, len(AT))), AT, [EVENT], NONE)[0] == 0.0


def test_earlier_in_the_window_scores_more_and_false_positives_cost_a_ninth(ev) -> None:  # type: ignore[no-untyped-def]
    early, mid, late = (_score(ev, [k])[0] for k in (560, 600, 649))
    assert early > mid > late > 0.0
    # The middle of the window: sigmoid(-0.5) = 2 / (1 + e^-2.5) - 1, over sigmoid(-1).
    sig = (2.0 / (1.0 + np.exp(-2.5)) - 1.0) / (2.0 / (1.0 + np.exp(-5.0)) - 1.0)
    assert mid == pytest.approx(100.0 * (sig + 1.0) / 2.0)
    # A false positive before the window (after probation) costs the full 0.11.
    with_fp = _score(ev, [300, 550])[0]
    assert with_fp == pytest.approx(100.0 * (1.0 - 0.11 + 1.0) / 2.0)


def test_probation_and_skipped_cycles_are_not_counted(ev) -> None:  # type: ignore[no-untyped-def]
    # Cycle 100 is in the first 15 %: neither a false positive nor anything else.
    assert _score(ev, [100, 550])[0] == pytest.approx(100.0)
    skip = NONE.copy()
    skip[0, 300] = True
    s = np.zeros((1, len(AT)))
    s[0, [300, 550]] = 1.0
    assert ev.nab_score(s, AT, [EVENT], skip)[0] == pytest.approx(100.0)


def test_false_positives_just_after_a_window_cost_less_than_far_ones(ev) -> None:  # type: ignore[no-untyped-def]
    near, far = _score(ev, [550, 660])[0], _score(ev, [550, 950])[0]
    assert 100.0 > near > far


def test_windows_reaching_into_the_probation_are_dropped(ev) -> None:  # type: ignore[no-untyped-def]
    # An event at cycle 100 (probation: the first 150 cycles): its window is not counted, so
    # detecting the later event (two events: windows 50 cycles wide, 575 .. 625) at its
    # window's start is perfect, and a score with no other window is NaN.
    s = np.zeros((1, len(AT)))
    s[0, 575] = 1.0
    assert ev.nab_score(s, AT, [(0, 100 * STEP, 100 * STEP), EVENT], NONE)[0] == \
        pytest.approx(100.0)
    assert np.isnan(ev.nab_score(s, AT, [(0, 100 * STEP, 100 * STEP)], NONE)[0])


def test_several_entities_share_one_threshold(ev) -> None:  # type: ignore[no-untyped-def]
    # Entity 0 peaks at 0.9 at its window's start, entity 1 at 0.8 far from its window:
    # the best common threshold (0.9) detects the first window and misses the second.
    s = np.zeros((2, len(AT)))
    s[0, 550], s[1, 300] = 0.9, 0.8
    score, thr = ev.nab_score(s, AT, [EVENT, (1, 600 * STEP, 600 * STEP)], np.zeros_like(s, bool))
    assert 0.8 < thr <= 0.9
    assert score == pytest.approx(100.0 * (1.0 - 1.0 + 2.0) / 4.0)
