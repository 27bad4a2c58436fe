"""`aura backtest`: replay history through the pipeline cycle by cycle and score the alerts.

History (a CSV file or a Prometheus range) is loaded once into memory and served to the very
`Pipeline.run_cycle(now)` the live exporter runs, with `now` stepping by `--interval` from
`input start + window` (no score before the window is full). Per evaluated cycle the
consensus and forecasts are written to `scores.csv`; the generated alert rules' semantics
(`ALERT_SEMANTICS`, derived from `exporter.rulegen`) turn the scores into `alerts.csv`, next to
the baselines of `exporter.baselines` replayed on the raw series; with `--incidents`,
`report.json` and `report.md` score all of them (definitions in exporter.backtest_report).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import logging
import math
import operator
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from exporter import catalog, util
from exporter.backtest_report import PLOT_FILES
from exporter.config import (
    UNPROJECTABLE_ADVICE,
    AnalysisConfig,
    Config,
    ConfigError,
    format_duration,
    parse_duration,
    unprojectable_resources,
)
from exporter.consensus import NOT_BACKED
from exporter.decision import FLEET_WIDE, RESTART_EXCUSE, SYMPTOM
from exporter.source import Fetch, SourceError
from exporter.windows import EntityKey, Window

log = logging.getLogger("aura.backtest")


# Default evaluation interval floor. Persistent homology of every entity each cycle dominates
# the replay (about 10 ms per entity per core): a 48-entity, 3-day history takes about 4 min at
# 5m and five times that at 1m. Alert `for:` then counts 5m evaluations, exactly as Prometheus
# with `evaluation_interval: 5m` would; pass --interval=1m for the live cadence.
DEFAULT_MIN_INTERVAL = 300.0

# Every file a run writes into --output-dir; an earlier run's are removed first (a run without
# --incidents must not leave a stale report beside fresh scores).
OUTPUT_FILES = ("scores.csv", "alerts.csv", "report.json", "report.md", *PLOT_FILES)


class BacktestError(Exception):
    """Bad input or an impossible backtest; the message is shown to the user as is."""


# -------------------------------------------------------------------------- alert semantics

# Score column an alert expression's metric maps to (scores.csv holds what /metrics serves).
_METRIC_COLUMN = {
    catalog.RISK_LEVEL.name: "level",
    catalog.RISK_SCORE.name: "risk",
    catalog.TOPOLOGY_ANOMALY.name: "anomaly_score",
}
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class AlertSemantics:
    """One entity alert as the backtest applies it: `column op threshold` held for `for_`,
    kept firing `keep_firing_for` seconds after it clears."""

    alertname: str
    severity: str
    column: str
    op: str
    threshold: float
    for_: float
    keep_firing_for: float = 0.0

    def condition(self, values: np.ndarray) -> np.ndarray:
        """True where the rule's expression would return a sample (NaN = absent = false)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(~np.isnan(values) & _OPS[self.op](values, self.threshold))


def alert_semantics(cfg: Config) -> tuple[AlertSemantics, ...]:
    """ALERT_SEMANTICS for `cfg`: the very alerts `aura generate rules` writes.

    Deriving them from `exporter.rulegen.alerts` (rather than restating thresholds here) is
    what keeps the backtest and the rule file from drifting apart. Each entity alert states
    its `metric op threshold` as fields, so no PromQL is parsed here (a selector such as
    `cluster=~"prod-[0-9]{2}"` is the rule file's business); an entity alert on a metric the
    scores do not hold, or with an unknown operator, is refused loudly.
    """
    from exporter.rulegen import alerts

    out = []
    for a in alerts(cfg):
        if not a.entity:
            continue
        if a.metric not in _METRIC_COLUMN or a.op not in _OPS or a.threshold != a.threshold:
            raise BacktestError(f"alert {a.name}: cannot replay {a.metric!r} {a.op!r} "
                                f"{a.threshold!r} (expression {a.expr!r})")
        out.append(AlertSemantics(a.name, a.severity, _METRIC_COLUMN[a.metric], a.op,
                                  float(a.threshold), float(a.for_),
                                  float(a.keep_firing_for)))
    return tuple(out)


ALERT_SEMANTICS = alert_semantics  # the one table: call with the config in use


# ------------------------------------------------------------------------------ the sources


class ReplaySource:
    """A Source over a Window held in memory: answers `fetch` by slicing the time axis."""

    def __init__(self, window: Window):
        self.window = window
        self._series = {s: int((~np.isnan(window.values[:, j]).all(axis=1)).sum())
                        for j, s in enumerate(window.signals)}

    async def fetch(self, analysis: AnalysisConfig, start: float, end: float) -> Fetch:
        """The held samples with start <= t <= end (Unix seconds, 1 µs tolerance); never
        fails, and reports every signal's series count as the live source does."""
        ts = self.window.timestamps
        lo = int(np.searchsorted(ts, start - 1e-6, side="left"))
        hi = int(np.searchsorted(ts, end + 1e-6, side="right"))
        w = self.window
        block = Window(w.analysis, w.label_names, w.entities, w.signals, ts[lo:hi],
                       w.values[:, :, lo:hi])
        return Fetch(block, {}, dict(self._series))

    async def close(self) -> None:
        """Nothing to release (the Source protocol's close)."""
        return None


def parse_time(text: str) -> float:
    """Unix seconds or RFC 3339 (`2024-05-01T00:00:00Z`, no zone = UTC); BacktestError if neither."""
    try:
        return util.parse_time(text)
    except ValueError as err:
        raise BacktestError(f"invalid time {text!r} (Unix seconds or RFC 3339)") from err


async def load_history(cfg: Config, analysis: AnalysisConfig, args: argparse.Namespace) -> Window:
    """The whole input as one Window (CSV file or Prometheus range)."""
    if args.input:
        from exporter.source.csvfile import CsvSource

        path = Path(args.input)
        if not path.is_file():
            raise BacktestError(f"--input: {path}: no such file")
        src: Any = CsvSource(str(path), analysis)
        try:
            start, end = src.time_range()
            # --start/--end narrow the file's span (either alone, or both).
            if args.start:
                start = max(start, parse_time(args.start))
            if args.end:
                end = min(end, parse_time(args.end))
            if end <= start:
                first, last = src.time_range()
                raise BacktestError(
                    f"--start/--end leave nothing of {path}: it spans "
                    f"{util.format_rfc3339(first)} to {util.format_rfc3339(last)}")
            fetch = await src.fetch(analysis, start, end)
        finally:
            close = getattr(src, "close", None)
            if close is not None:
                await close()
    else:
        from exporter.source.history import HistorySource

        start, end = parse_time(args.start), parse_time(args.end)
        if end <= start:
            raise BacktestError("--end must be after --start")
        src = HistorySource(cfg.source)
        try:
            fetch = await src.fetch_range(analysis, start, end)
        finally:
            await src.close()
        if fetch.errors:
            raise BacktestError("history queries failed: " + "; ".join(
                f"{k}: {v}" for k, v in sorted(fetch.errors.items())))
    block = fetch.block
    if not block.entities or len(block.timestamps) == 0:
        raise BacktestError("the input holds no samples for analysis " + repr(analysis.name))
    return block


# ---------------------------------------------------------------------------- the replay


def _run_text(mask: np.ndarray | None, texts: dict[tuple[int, int], str], row: int,
              k: int) -> str:
    """The text recorded at the start of the run of `mask` [E, N] that evaluation `k` of
    entity `row` belongs to ("" outside a run); texts are kept at run starts only."""
    if mask is None or not mask[row, k]:
        return ""
    while k > 0 and mask[row, k - 1] and (row, k) not in texts:
        k -= 1
    return texts.get((row, k), "")


@dataclass
class Scores:
    """Per-evaluation outputs, [E, N] over the union of entities (NaN where absent)."""

    times: np.ndarray
    entities: tuple[EntityKey, ...]
    present: np.ndarray
    risk: np.ndarray
    level: np.ndarray
    anomaly: np.ndarray
    probability: np.ndarray  # [E, H, N]
    ttf: np.ndarray
    # Why each level was reached, for alerts.csv: indices into `signals` / `actions` (-1:
    # none) and a bit mask over `agents` of the agents supporting the level.
    signals: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    top: np.ndarray | None = None
    support: np.ndarray | None = None
    action: np.ndarray | None = None
    # [E, N] bool: the decision stage lowered the level to 0 or did not raise it (a sustained
    # anomaly a restart excuses; exporter.decision), and the explanation at the first
    # evaluation of each such run, keyed (row, evaluation).
    held: np.ndarray | None = None
    held_text: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    # [E, N] bool: level 0 although an agent voted at or above the warning risk (the
    # consensus did not back it: no quorum, no agent that sees a mechanism, the combined risk
    # below the bar), and the consensus's explanation at the first evaluation of each run.
    unagreed: np.ndarray | None = None
    unagreed_text: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    # [E, N] bool: a level held as part of a fleet-wide event (exporter.decision).
    fleet_wide: np.ndarray | None = None
    # The consensus's explanation of each evaluation at a level >= 1 (where an alert on it
    # fires, alerts.csv), keyed (row, evaluation).
    level_text: dict[tuple[int, int], str] = dataclasses.field(default_factory=dict)
    # [E, N] bool: a level held as another entity's symptom (exporter.cascade).
    symptom: np.ndarray | None = None

    @property
    def suppressed(self) -> int:
        """Evaluations whose level exporter.decision lowered to 0 or did not raise."""
        return 0 if self.held is None else int(self.held.sum())

    def held_because(self, row: int, k: int) -> str:
        """The explanation of the held run that evaluation `k` of entity `row` belongs to."""
        return _run_text(self.held, self.held_text, row, k)

    def first_hold(self, row: int, ks: np.ndarray) -> str:
        """The explanation of the first evaluation among `ks` (ascending) of entity `row` that
        the decision stage held or the consensus did not back ("" when none was)."""
        for k in ks.tolist():
            for mask, texts in ((self.held, self.held_text), (self.unagreed, self.unagreed_text)):
                if mask is not None and mask[row, k]:
                    return _run_text(mask, texts, row, k)
        return ""

    def why(self, row: int, k: int) -> tuple[str, str, str, str]:
        """(top signal, supporting agents `a+b`, action, explanation) of entity `row` at
        evaluation `k` ("" each where unknown; the explanation only at a level >= 1)."""
        text = self.level_text.get((row, k), "")
        if self.top is None or self.support is None or self.action is None:
            return "", "", "", text
        t, m, a = int(self.top[row, k]), int(self.support[row, k]), int(self.action[row, k])
        agents = "+".join(name for j, name in enumerate(self.agents) if m >> j & 1)
        return (self.signals[t] if t >= 0 else "", agents, self.actions[a] if a >= 0 else "",
                text)

    def column(self, name: str) -> np.ndarray:
        """The [E, N] array an alert rule reads: `risk`, `level` or `anomaly_score`."""
        return {"risk": self.risk, "level": self.level, "anomaly_score": self.anomaly}[name]


class Progress:
    """Plain-text progress on stderr: cycles done / total, rate and ETA."""

    def __init__(self, total: int, stream: TextIO | None = None, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        # sys.stderr looked up now, not at import (pytest swaps it per test).
        stream = sys.stderr if stream is None else stream
        self.total, self.stream, self.every, self.clock = total, stream, every, clock
        self.started = clock()
        self.last = float("-inf")
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def update(self, done: int) -> None:
        """Report `done` cycles: at most every `every` s on a terminal (10x that otherwise),
        and always at the end."""
        now = self.clock()
        if done < self.total and now - self.last < (self.every if self.tty else 10 * self.every):
            return
        self.last = now
        elapsed = now - self.started
        # No ETA from the first 2 % (the pool's start-up and the first cycles' fits would
        # project a run of seconds to most of an hour; helper-55): "?" until then.
        eta = (elapsed / done * (self.total - done) if done >= max(1, 0.02 * self.total)
               else float("nan"))
        line = (f"backtest {done}/{self.total} cycles {100 * done / max(self.total, 1):.0f}% "
                f"elapsed {util.format_clock(elapsed)} eta {util.format_clock(eta)}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def evaluation_times(window: Window, analysis: AnalysisConfig, interval: float) -> np.ndarray:
    """now = input start + window, then every interval up to the last sample."""
    first = float(window.timestamps[0]) + float(analysis.window)
    last = float(window.timestamps[-1])
    if first > last:
        span = last - float(window.timestamps[0])
        raise BacktestError(
            f"the input spans {format_duration(span)}, less than the analysis window "
            f"{format_duration(analysis.window)}: nothing to evaluate")
    return first + interval * np.arange(int(math.floor((last - first) / interval + 1e-9)) + 1)


async def replay(cfg: Config, analysis: AnalysisConfig, window: Window, times: np.ndarray, *,
                 predictor: Any, model_info: dict[str, str], topology_workers: int | None,
                 progress: Progress | None, batched: bool = True, rows: int | None = None,
                 feedback: Sequence[tuple[EntityKey, float, float | None]] = (),
                 jobs: int = 1) -> tuple[Scores, dict[str, float]]:
    """Run the pipeline at every evaluation time; collect the analysis' per-entity outputs.

    batched: `Pipeline.replay` (many cycles per stage call, same outputs; `rows` (cycle,
    entity) rows per batch); False runs `Pipeline.run_cycle` cycle by cycle as the live
    exporter does (kept to check the former). feedback: (entity, start, end) incidents the
    decision stage learns from as the live exporter learns from its Alertmanager webhook,
    each from its start on (exporter.decision.DecisionStage.exclude). jobs > 1 (batched
    only): the topology stage split by entity over that many processes (same outputs).
    """
    from exporter.pipeline import REPLAY_ROWS, Pipeline

    # Only the analysis under test: other analyses' queries do not apply to this input.
    run_cfg = _replace(cfg, analyses=(analysis,))
    pipeline = Pipeline(run_cfg, ReplaySource(window), predictor=predictor,
                        model_info=model_info, topology_workers=topology_workers)
    if feedback:
        pipeline.note_incidents(analysis.name, feedback)
    rec = _Recorder(analysis, window.entities, len(times))
    stage_seconds: dict[str, float] = {}
    try:
        if batched:
            k = 0
            features = topology_features_needed(predictor, len(window.entities))
            async for _, results in pipeline.replay(times.tolist(), rows=rows or REPLAY_ROWS,
                                                    topology_features=features,
                                                    topology_jobs=jobs):
                rec.add(k, results)
                k += 1
                if progress is not None:
                    progress.update(k)
            stage_seconds = dict(pipeline.stats.stage_seconds)
        else:
            for k, now in enumerate(times):
                snap = await pipeline.run_cycle(float(now))
                for stage, sec in pipeline.stats.stage_seconds.items():
                    stage_seconds[stage] = stage_seconds.get(stage, 0.0) + sec
                rec.add(k, snap.results)
                if progress is not None:
                    progress.update(k + 1)
    finally:
        pipeline.close()
    return rec.scores(times), stage_seconds


def topology_features_needed(predictor: Any, entities: int) -> bool:
    """Whether a replay's outputs read the topology diagram features: only the fleet outliers
    (topology agent), from `tda.fleet.MIN_FLEET` entities on. The forecast never does (the
    model takes no topology inputs; `lnn.artifacts` refuses a card that says otherwise), but
    a predictor without a card (a test double) is assumed to."""
    from exporter.tda.fleet import MIN_FLEET

    if entities >= MIN_FLEET:
        return True
    return predictor is not None and not isinstance(getattr(predictor, "card", None), dict)


class _Recorder:
    """Per-cycle results of one analysis -> the [E, N] arrays of `Scores`."""

    def __init__(self, analysis: AnalysisConfig, entities: tuple[EntityKey, ...], n: int):
        self.analysis, self.entities = analysis, entities
        self.index = {e: i for i, e in enumerate(entities)}
        e, h = len(entities), len(analysis.horizons)
        self.horizons = [float(x) for x in analysis.horizons]
        self.risk = np.full((e, n), np.nan)
        self.level = np.full((e, n), np.nan)
        self.anomaly = np.full((e, n), np.nan)
        self.prob = np.full((e, h, n), np.nan)
        self.ttf = np.full((e, n), np.nan)
        self.present = np.zeros((e, n), dtype=bool)
        self.top = np.full((e, n), -1, dtype=np.int16)
        self.support = np.zeros((e, n), dtype=np.int32)
        self.action = np.full((e, n), -1, dtype=np.int16)
        self.signals: tuple[str, ...] = ()
        self.agents: tuple[str, ...] = ()
        self.actions: dict[str, int] = {}
        self.held = np.zeros((e, n), dtype=bool)
        self.held_text: dict[tuple[int, int], str] = {}
        self.unagreed = np.zeros((e, n), dtype=bool)
        self.unagreed_text: dict[tuple[int, int], str] = {}
        self.fleet_wide = np.zeros((e, n), dtype=bool)
        self.symptom = np.zeros((e, n), dtype=bool)
        self.level_text: dict[tuple[int, int], str] = {}

    def add(self, k: int, results: Sequence[Any]) -> None:
        res = next((r for r in results if r.analysis == self.analysis.name), None)
        if res is None or not res.entities:
            return
        rows = np.array([self.index.get(tuple(x), -1) for x in res.entities])
        ok = rows >= 0
        r = rows[ok]
        self.present[r, k] = True
        c = res.consensus
        if c is not None:
            self.risk[r, k] = np.asarray(c.risk, dtype=float)[ok]
            lv = np.asarray(c.level, dtype=float)[ok]
            self.level[r, k] = np.where(lv < 0, np.nan, lv)  # -1: undecided -> empty
            self.ttf[r, k] = np.asarray(c.time_to_failure, dtype=float)[ok]
            self._why(r, k, ok, res.signals, c, lv)
        if res.topology is not None:
            self.anomaly[r, k] = np.asarray(res.topology.anomaly_score, dtype=float)[ok]
        f = res.forecast
        if f is not None:
            fh = [float(x) for x in f.horizons]
            for j, hz in enumerate(self.horizons):
                match = [i for i, x in enumerate(fh) if abs(x - hz) < 1e-6]
                if match:
                    self.prob[r, j, k] = np.asarray(f.probability, dtype=float)[ok, match[0]]
            if c is None:
                self.ttf[r, k] = np.asarray(f.time_to_failure, dtype=float)[ok]

    def _why(self, r: np.ndarray, k: int, ok: np.ndarray, signals: tuple[str, ...],
             c: Any, level: np.ndarray) -> None:
        """Record the holds (the decision stage's, and risks the consensus did not back) with
        their texts at each run's start, and the top signal, supporting agents, action and
        explanation of the entities at a level >= 1."""
        self.signals = self.signals or tuple(signals)
        self.agents = self.agents or tuple(c.agents)
        up = level >= 1
        if c.threshold is not None and c.explanation:
            for j, i in enumerate(np.flatnonzero(ok)):
                text = c.explanation[i]
                row = int(r[j])
                if text.startswith(("usual for this entity", FLEET_WIDE, SYMPTOM)) \
                        or RESTART_EXCUSE in text:
                    self.held[row, k] = True
                    self.fleet_wide[row, k] = text.startswith(FLEET_WIDE)
                    self.symptom[row, k] = text.startswith(SYMPTOM)
                    # Texts at run starts only, and where a held run turns into a symptom
                    # hold (a fleet-wide hold first, then the caller seen as a symptom).
                    if k == 0 or not self.held[row, k - 1] \
                            or (self.symptom[row, k] and not self.symptom[row, k - 1]):
                        self.held_text[(row, k)] = text
                elif level[j] == 0 and NOT_BACKED in text:
                    self.unagreed[row, k] = True
                    if k == 0 or not self.unagreed[row, k - 1]:
                        self.unagreed_text[(row, k)] = text
        if not up.any():
            return
        if c.explanation:  # why an alert fired (alerts.csv; levels are rare: 0.3-0.5 % of
            at = np.flatnonzero(ok)  # the evaluations on the independent fleets)
            for u in np.flatnonzero(up).tolist():
                self.level_text[(int(r[u]), k)] = c.explanation[int(at[u])]
        contrib = np.asarray(c.contribution, dtype=float)[ok]
        if contrib.size:
            known = np.isfinite(contrib).any(axis=1)
            top = np.where(known, np.argmax(np.nan_to_num(contrib, nan=-1), axis=1), -1)
            self.top[r[up], k] = top[up]
        agree = np.asarray(c.agreeing, dtype=bool)[ok]
        if agree.ndim == 2 and agree.shape[1]:
            bits = (agree.astype(np.int64) << np.arange(agree.shape[1])[None, :]).sum(axis=1)
            self.support[r[up], k] = bits[up]
        actions = [a for a, keep in zip(c.action, ok, strict=True) if keep]
        for i in np.flatnonzero(up):
            self.action[r[i], k] = self.actions.setdefault(actions[i], len(self.actions))

    def scores(self, times: np.ndarray) -> Scores:
        ttf = np.where(np.isfinite(self.ttf), self.ttf, np.nan)  # +Inf: none projected
        return Scores(times, self.entities, self.present, self.risk, self.level, self.anomaly,
                      self.prob, ttf, self.signals, self.agents, tuple(self.actions),
                      self.top, self.support, self.action, self.held, self.held_text,
                      self.unagreed, self.unagreed_text, self.fleet_wide, self.level_text,
                      self.symptom)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


# ---------------------------------------------------------------------------- outputs


def _cell(value: float, digits: int = 6) -> str:
    if value != value or math.isinf(value):
        return ""
    return f"{value + 0.0:.{digits}g}"  # + 0.0: a negative zero prints as 0


def score_header(analysis: AnalysisConfig) -> list[str]:
    """scores.csv columns: timestamp, the entity labels, risk, level, anomaly_score, one
    failure_probability_<horizon> per horizon, time_to_failure_seconds (design.md section 5)."""
    probs = [f"failure_probability_{format_duration(h)}" for h in analysis.horizons]
    return ["timestamp", *analysis.entity_labels, "risk", "level", "anomaly_score", *probs,
            "time_to_failure_seconds"]


def write_scores_csv(path: Path, analysis: AnalysisConfig, scores: Scores) -> None:
    """scores.csv: one row per present entity per evaluation (6 significant digits, 10 for
    the time to failure in seconds; empty cells for NaN). Raises OSError."""
    from exporter.backtest_report import fmt_time

    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(score_header(analysis))
        for k, t in enumerate(scores.times):
            ts = fmt_time(float(t))
            for i in np.flatnonzero(scores.present[:, k]):
                lv = scores.level[i, k]
                w.writerow([
                    ts, *scores.entities[i], _cell(scores.risk[i, k]),
                    "" if lv != lv else str(int(lv)), _cell(scores.anomaly[i, k]),
                    *(_cell(p) for p in scores.probability[i, :, k]),
                    _cell(scores.ttf[i, k], 10),
                ])


def aura_alerts(cfg: Config, scores: Scores) -> list[Any]:
    """AURA's alerts on the scores: every rule of `alert_semantics(cfg)` with its `for:`
    (backtest_report.alert_events), level alerts with their top signal, agents, action and the
    consensus's explanation at their start."""
    from exporter.backtest_report import alert_events

    out = []
    index = {e: i for i, e in enumerate(scores.entities)}
    for rule in alert_semantics(cfg):
        cond = rule.condition(scores.column(rule.column)) & scores.present
        for a in alert_events(rule.alertname, rule.severity, scores.entities, scores.times,
                              cond, rule.for_, rule.keep_firing_for):
            k = int(np.searchsorted(scores.times, a.start))
            top, agents, action, text = scores.why(index[a.entity], k) \
                if rule.column == "level" else ("", "", "", "")
            out.append(dataclasses.replace(a, top_signal=top, agents=agents, action=action,
                                           explanation=text))
    return out


def _before_incident(scores: Scores, row: int | None, lo: float,
                     hi: float) -> dict[str, Any]:
    """What AURA showed for one incident's entity in [lo, hi) (its match window before the
    start): the peak risk, how many evaluations the decision stage held at level 0, and the
    first explanation of a hold, by that stage or by a consensus that did not back an
    agent's risk (`Scores.first_hold`: why an alert came late or not at all)."""
    if row is None:
        return {"peak_risk_before": None, "held_evaluations": 0, "first_held": ""}
    ks = np.flatnonzero((scores.times >= lo) & (scores.times < hi))
    risk = scores.risk[row, ks] if len(ks) else np.array([])
    held = ks[scores.held[row, ks]] if scores.held is not None else ks[:0]
    peak = float(np.nanmax(risk)) if np.isfinite(risk).any() else None
    return {"peak_risk_before": peak, "held_evaluations": len(held),
            "first_held": scores.first_hold(row, ks)}


def build_report(cfg: Config, analysis: AnalysisConfig, scores: Scores, aura: list[Any],
                 baseline: list[Any], baseline_names: Sequence[str], incidents: list[Any],
                 interval: float, extra: dict[str, Any]) -> dict[str, Any]:
    """report.json's content: per system (AURA and each baseline) precision, recall, false
    alerts per entity-day and lead-time quantiles on the incidents inside the evaluated span
    on an entity of the scores (definitions in exporter.backtest_report), plus per-incident
    lead times in seconds; the others are counted (`incidents_outside_evaluation`,
    `incidents_unknown_entity`)."""
    from exporter.backtest_report import (
        false_alert_causes,
        lead_time,
        score_system,
        scored_incidents,
        systems,
    )

    times = scores.times
    first, last = float(times[0]), float(times[-1])
    horizon = max(float(h) for h in analysis.horizons)
    # Entity-days observed: evaluations each entity was present at, summed. A pod that lived
    # four hours of a three-day replay (a rollout, an autoscaler) is a sixth of a day, not
    # three: counted over the whole span, a churning fleet's false alerts per entity-day
    # read 3-4x too low (benchmarks/fleetgen4.py: 394 span days, 102 observed).
    entity_days = float(np.count_nonzero(scores.present)) * interval / 86400.0
    all_inc = scored_incidents(incidents)
    present = set(scores.entities)
    known = [i for i in all_inc if i.entity in present]
    inc = [i for i in known if first <= i.start <= last]
    names = [r.alertname for r in alert_semantics(cfg)]
    sets = systems(aura, baseline, names, baseline_names)
    figures = {name: score_system(alerts, inc, horizon=horizon, last_eval=last,
                                  entity_days=entity_days) for name, alerts in sets.items()}
    detail = []
    lead_times: dict[str, list[float | None]] = {}
    for name, alerts in sets.items():
        by_entity: dict[EntityKey, list[Any]] = {}
        for a in alerts:
            by_entity.setdefault(a.entity, []).append(a)
        lead_times[name] = [lead_time(by_entity, i, horizon, last) for i in inc]
    row_of = {e: r for r, e in enumerate(scores.entities)}
    for j, i in enumerate(inc):
        detail.append({
            "start": i.start, "end": i.end,
            "entity": dict(zip(analysis.entity_labels, i.entity, strict=False)),
            "kind": i.kind, "sudden": i.sudden,
            "lead_time_seconds": {name: lead_times[name][j] for name in sets},
            **_before_incident(scores, row_of.get(i.entity), i.start - horizon, i.start),
        })
    return {
        "analysis": analysis.name,
        "interval_seconds": interval,
        "largest_horizon_seconds": horizon,
        "evaluations": len(times),
        "first_evaluation": first,
        "last_evaluation": last,
        "first_evaluation_rfc3339": util.format_rfc3339(first),
        "last_evaluation_rfc3339": util.format_rfc3339(last),
        "entities": len(scores.entities),
        "entity_days": entity_days,
        "entity_days_span": len(scores.entities) * len(times) * interval / 86400.0,
        "incidents_total": len(all_inc),
        "incidents_scored": len(inc),
        "incidents_outside_evaluation": len(known) - len(inc),
        "incidents_unknown_entity": len(all_inc) - len(known),
        "sudden_incidents": sum(1 for i in inc if i.sudden),
        **coverage(scores),
        **extra,
        "systems": figures,
        # Evaluations whose level exporter.decision lowered to 0 (risk usual for the entity).
        "decision_suppressed_evaluations": scores.suppressed,
        "false_alert_causes": false_alert_causes(aura, inc, horizon=horizon, last_eval=last),
        "incidents": detail,
        "lead_times": {n: [v for v, i in zip(vals, inc, strict=True) if not i.sudden]
                       for n, vals in lead_times.items()},
    }


def replayed_model_info(predictor: Any, model_info: dict[str, str],
                        analysis: AnalysisConfig) -> dict[str, str]:
    """The model's info as the replay used it: its load-time `model_info` with the status
    saying so where the forecast abstained on `analysis` (a window or step the model was
    not trained for: `FailurePredictor.incompatibility`). The report's model line read
    "status ok" over a run whose forecast abstained throughout (helper-55)."""
    why = getattr(predictor, "incompatibility", None)
    reason = why(analysis) if callable(why) else None
    if not reason:
        return model_info
    return {**model_info, "status": f"abstaining on analysis {analysis.name}: {reason}"}


def coverage(scores: Scores) -> dict[str, Any]:
    """How many entity evaluations (an entity with samples at an evaluation) had a risk and
    an anomaly score: `entity_evaluations`, `risk_undecided` (no sample in the window's
    last steps, or fewer agents voted than `consensus.min_voters`: a forecast that abstains
    leaves the others' votes), `anomaly_unknown` (warming up, every signal constant or
    two-state, or the window mostly missing: no exported score), the levels held as part
    of a fleet-wide event (`fleet_wide_held_evaluations`, `..._entities`) and as another
    entity's symptom (`symptom_held_evaluations`, `..._entities`, `symptom_examples`)."""
    present = np.asarray(scores.present, dtype=bool)
    wide = np.zeros_like(present) if scores.fleet_wide is None \
        else np.asarray(scores.fleet_wide, dtype=bool)
    sym = np.zeros_like(present) if scores.symptom is None \
        else np.asarray(scores.symptom, dtype=bool)
    return {"entity_evaluations": int(present.sum()),
            "risk_undecided": int((present & ~np.isfinite(scores.risk)).sum()),
            "anomaly_unknown": int((present & ~np.isfinite(scores.anomaly)).sum()),
            # Levels held as part of a fleet-wide event, and how many entities had one.
            "fleet_wide_held_evaluations": int(wide.sum()),
            "fleet_wide_held_entities": int(wide.any(axis=1).sum()),
            # Levels held as another entity's symptom, and the first explanation of each
            # entity so held (up to SYMPTOM_EXAMPLES: a caller is no incident, so the
            # per-incident table never shows it).
            "symptom_held_evaluations": int(sym.sum()),
            "symptom_held_entities": int(sym.any(axis=1).sum()),
            "symptom_examples": _symptom_examples(scores, sym)}


# How many held callers report.json and report.md name with their explanation.
SYMPTOM_EXAMPLES = 5


def _symptom_examples(scores: Scores, sym: np.ndarray) -> list[dict[str, Any]]:
    """Up to SYMPTOM_EXAMPLES entities held as a symptom, most-held first: entity labels
    (tuple of values), evaluations held, the explanation of the first such evaluation."""
    out = []
    counts = sym.sum(axis=1)
    for row in np.argsort(-counts, kind="stable")[:SYMPTOM_EXAMPLES]:
        if not counts[row]:
            break
        k = int(np.flatnonzero(sym[row])[0])
        out.append({"entity": list(scores.entities[row]), "evaluations": int(counts[row]),
                    "first": scores.held_because(int(row), k)})
    return out


def remove_earlier_outputs(out: Path, written: Collection[str]) -> list[str]:
    """Delete the OUTPUT_FILES in `out` that this run did not write (`written`: the names it
    did), i.e. an earlier run's left stale (a report without --incidents), nothing else; log
    once which. Called once the run has written its own, so a run that fails keeps the
    earlier outputs.

    Returns the names removed. Raises OSError (one could not be removed).
    """
    removed = []
    for name in OUTPUT_FILES:
        path = out / name
        if name not in written and path.is_file():
            path.unlink()
            removed.append(name)
    if removed:
        log.info("msg=\"removed the outputs of an earlier run\" dir=%s files=%s", out,
                 ",".join(removed))
    return removed


def warn_unknown_entities(incidents: Sequence[Any], entities: Sequence[EntityKey],
                          label_names: Sequence[str]) -> int:
    """Log once the incidents whose entity the data does not hold (up to 5 of those entities
    and their count): they are not scored (`build_report`). Returns how many incidents."""
    present = set(entities)
    unknown = [tuple(i.entity) for i in incidents if tuple(i.entity) not in present]
    if unknown:
        names = list(dict.fromkeys(unknown))
        log.warning("msg=\"incidents on entities absent from the data are not scored (a label "
                    "spelt differently?)\" incidents=%d entities=%d first=%r", len(unknown),
                    len(names), "; ".join(",".join(f"{k}={v}" for k, v in zip(
                        label_names, e, strict=False)) for e in names[:5]))
    return len(unknown)


# ------------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `aura backtest` (design.md section 4)."""
    parser.add_argument("--config.file", dest="config_file", default="aura.yml",
                        help="configuration file (YAML)")
    parser.add_argument("--input", default=None,
                        help="history CSV: timestamp,<entity labels>,<signals>")
    parser.add_argument("--start", default=None, help="history start (Unix seconds or RFC 3339); "
                        "with --input, where to start in the file")
    parser.add_argument("--end", default=None, help="history end (Unix seconds or RFC 3339); "
                        "with --input, where to stop in the file")
    parser.add_argument("--analysis", default=None, help="analysis to replay (default: the first)")
    parser.add_argument("--incidents", default=None,
                        help="incidents CSV: start,end,<entity labels>[,kind]")
    parser.add_argument("--output-dir", dest="output_dir", required=True,
                        help="directory for scores.csv, alerts.csv, report.json, report.md "
                             "(an earlier run's are removed first)")
    parser.add_argument("--interval", default=None,
                        help="evaluation interval (default: the config's interval, at least "
                             "5m); alert `for:` counts evaluations at this interval, as "
                             "Prometheus does")
    parser.add_argument("--model.path", dest="model_path", default=None,
                        help="failure model directory (default: model.path of the config)")
    parser.add_argument("--topology.workers", dest="topology_workers", type=int, default=None,
                        help="processes for persistent homology (default: all cores)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the topology stage, entities split between them "
                             "(same outputs as 1; each runs its persistent homology inline, "
                             "so --topology.workers applies only with --jobs=1)")
    parser.add_argument("--no-plots", dest="plots", action="store_false",
                        help="skip the PNG plots of report.md")
    parser.add_argument("--no-incident-feedback", dest="feedback", action="store_false",
                        help="do not let the decision stage learn from --incidents as they "
                             "start (as the live exporter learns from its Alertmanager "
                             "webhook); by default it does, from each incident's start on")
    # Hidden: `cycles` replays with run_cycle, cycle by cycle (the reference the batched
    # replay is checked against); --replay.rows sets the (cycle, entity) rows per batch.
    parser.add_argument("--replay", choices=("batched", "cycles"), default="batched",
                        help=argparse.SUPPRESS)
    parser.add_argument("--replay.rows", dest="replay_rows", type=int, default=None,
                        help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """`aura backtest`: exit status 0, or 1 with the reason on stderr (bad flags, config,
    input or source, an unwritable output directory)."""
    try:
        return asyncio.run(_run(args))
    except (BacktestError, ConfigError, SourceError) as err:
        print(f"aura backtest: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:  # e.g. a malformed CSV row, an unwritable directory
        print(f"aura backtest: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    from exporter.baselines import SEVERITY, baseline_rules
    from exporter.config import load_config

    if not args.input and not (args.start and args.end):
        raise BacktestError("give either --input=FILE (optionally narrowed by --start and/or "
                            "--end) or both --start and --end")
    # A CSV's columns are the signals: queries are only needed to read from Prometheus.
    if not Path(args.config_file).exists():
        raise BacktestError(
            f"--config.file: {args.config_file}: no such file (`aura simulate --format=csv` "
            "writes one beside its CSV; aura.example.yml documents every key)")
    cfg = load_config(args.config_file, require_queries=not args.input)
    analysis = cfg.analysis(args.analysis)
    for _, name, signal in unprojectable_resources(cfg):
        if name == analysis.name:  # the analysis replayed, not every one of the file
            log.warning("msg=%s analysis=%s signal=%s", json.dumps(UNPROJECTABLE_ADVICE), name,
                        signal)
    try:
        interval = (parse_duration(args.interval) if args.interval
                    else max(float(cfg.interval), DEFAULT_MIN_INTERVAL))
    except ValueError as err:
        raise BacktestError(f"--interval: {err}") from err
    if interval <= 0:
        raise BacktestError("--interval must be > 0")
    if getattr(args, "jobs", 1) < 1:
        raise BacktestError("--jobs must be >= 1")
    incidents: list[Any] = []
    if args.incidents:
        from exporter.source.csvfile import read_incidents

        if not Path(args.incidents).is_file():
            raise BacktestError(f"--incidents: {args.incidents}: no such file")
        incidents = list(read_incidents(args.incidents, tuple(analysis.entity_labels)))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    began = time.monotonic()
    window = await load_history(cfg, analysis, args)
    loaded = time.monotonic()
    times = evaluation_times(window, analysis, interval)
    warn_unknown_entities(incidents, window.entities, analysis.entity_labels)
    from exporter.pipeline import load_predictor

    predictor, model_info = load_predictor(args.model_path or cfg.model.path)
    progress = Progress(len(times))
    pipeline_log = logging.getLogger("aura.pipeline")
    saved_level = pipeline_log.level
    # One "cycle done" line per replayed cycle would bury the progress line; warnings stay.
    if not pipeline_log.isEnabledFor(logging.DEBUG):
        pipeline_log.setLevel(logging.WARNING)
    try:
        scores, stage_seconds = await replay(
            cfg, analysis, window, times, predictor=predictor, model_info=model_info,
            topology_workers=args.topology_workers, progress=progress,
            batched=getattr(args, "replay", "batched") == "batched",
            rows=getattr(args, "replay_rows", None), jobs=getattr(args, "jobs", 1),
            feedback=[(tuple(i.entity), float(i.start), None if i.end is None else float(i.end))
                      for i in incidents] if args.feedback else ())
    finally:
        pipeline_log.setLevel(saved_level)
    replayed = time.monotonic()
    model_info = replayed_model_info(predictor, model_info, analysis)

    write_scores_csv(out / "scores.csv", analysis, scores)
    aura = aura_alerts(cfg, scores)
    from exporter.backtest_report import (
        alert_events,
        render_plots,
        write_alerts_csv,
        write_markdown,
    )

    baseline = []
    rules = baseline_rules(window, analysis, times)
    for rule in rules:
        baseline += alert_events(rule.name, SEVERITY, window.entities, times, rule.condition,
                                 rule.for_)
    write_alerts_csv(out / "alerts.csv", analysis.entity_labels, aura + baseline)
    timings = {"load_seconds": loaded - began, "replay_seconds": replayed - loaded,
               "stage_seconds": stage_seconds, "scoring_seconds": time.monotonic() - replayed}
    log.info("backtest replayed analysis=%s cycles=%d entities=%d duration_seconds=%.1f",
             analysis.name, len(times), len(window.entities), replayed - loaded)
    if args.incidents:
        report = build_report(
            cfg, analysis, scores, aura, baseline, [r.name for r in rules], incidents, interval,
            {"model": model_info, "timings": timings,
             "baselines": {r.name: r.description for r in rules},
             "alert_semantics": [vars(s) for s in alert_semantics(cfg)]})
        (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
        plots: dict[str, str] = {}
        if args.plots:
            from exporter.backtest_report import scored_incidents

            inc = scored_incidents(incidents)
            plots = render_plots(out, times=times, entities=scores.entities, risk=scores.risk,
                                 incidents=[i for i in inc if times[0] <= i.start <= times[-1]],
                                 alerts=aura, report=report)
        write_markdown(out, report, plots)
    remove_earlier_outputs(out, {"scores.csv", "alerts.csv"} | (
        {"report.json", "report.md", *(Path(p).name for p in plots.values())}
        if args.incidents else set()))
    print(f"aura backtest: {len(times)} cycles, {len(window.entities)} entities, "
          f"{len(aura)} AURA alerts, {len(baseline)} baseline alerts -> {out}"
          + ("" if args.incidents else
             " (scores.csv, alerts.csv; report.md needs --incidents=FILE: start,end,<labels>)"),
          file=sys.stderr)
    return 0
