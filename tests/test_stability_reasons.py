"""The stability agent's reason texts: only the leading kind's is formatted, with its figures
(restarts, scrape gaps; nothing below the action risk)."""

from __future__ import annotations

import re

import numpy as np

from exporter.agents.stability import StabilityAgent
from exporter.results import Window
from tests.test_agents import T, _fleet, _inp, _rows


def test_reasons_name_the_leading_evidence_with_its_figures() -> None:
    win, kinds, _ = _fleet(seed=5)
    v = StabilityAgent().assess(_inp(win))
    loop = np.flatnonzero(_rows(kinds, "crashloop"))
    assert all(re.fullmatch(r"restarted about \d+ times", v.reasons[i]) for i in loop), \
        [v.reasons[i] for i in loop]
    values = win.values.copy()
    healthy = np.flatnonzero(_rows(kinds, "healthy"))
    for k in range(T - 30, T, 4):
        values[healthy, :, k : k + 2] = np.nan
    v = StabilityAgent().assess(_inp(Window(win.analysis, win.label_names, win.entities,
                                            win.signals, win.timestamps, values)))
    for i in healthy:
        assert re.fullmatch(r"scrapes failing \(\d+ gaps, \d+% of the last \d+ samples missing\)",
                            v.reasons[i]), v.reasons[i]
    quiet = np.flatnonzero(np.nan_to_num(v.risk) < 0.3)
    assert all(v.reasons[i] == "" for i in quiet)
