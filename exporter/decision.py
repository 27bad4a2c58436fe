"""Self-calibrating alert decisions: a level only counts when its risk is rare for the entity.

The consensus says how risky an entity looks on an absolute 0..1 scale; that scale does not
survive a fleet AURA has never seen (a model trained on one simulator is overconfident on
another fleet's benign behaviour). This stage keeps, per entity, a *reference* of its own
recent consensus risks (and pools them into the fleet's reference) and lets a warning or
critical level through only when the current risk lies above both

* the entity's own reference quantile (by at least MARGIN) (its usual risks over the last `reference` span), and
* the fleet's reference quantile (what every entity of the analysis usually shows),

and, where the entity reached an alert's level at this time of day on an earlier day of the
reference (a daily surge, a nightly batch job: nothing was recorded then), above that risk by
an odds factor (`_same_phase`): a recurring pattern peaks a little higher on some days than
on others, and "higher than ever by 0.02" must not page for it;

where the quantile comes from the configured **alert budget** (alerts per entity-day that
benign behaviour may spend; see `threshold_quantile`). Each reference sample keeps the signal
that led its risk (the consensus's largest contribution), and an entity at a level is read
against its own samples (its reference and its daily pattern) that its current leading
signal led, the others counted as risk 0: one host's disk log-rotation sawtooth that the
capacity agent projects to risk 0.8 every two hours is usual for that disk, and must not
hide a memory leak beginning on the same host for an hour. The fleet's bar still reads
every sample (read by leading signal too, it let first-time events through on many signals;
measured: benchmarks/README.md, "References by leading signal"). The reference leaves out
the newest `exclude_recent` (default: the analysis' largest horizon), so a developing failure is
compared with the days before it, not with its own precursor; a periodic benign pattern
(a garbage-collection sawtooth, a nightly backup, a daily surge) sits in the reference after
one period and stops alerting, without labels. Incidents recorded by the Alertmanager webhook
(or given to the backtest) are left out of the reference so a real failure does not teach
the entity that failing is normal.

Method: an empirical (conformal) tail test of the current risk against the entity's own and
the fleet's past risks, in the spirit of Numenta's anomaly likelihood (Ahmad et al., 2017)
and split-conformal p-values (Vovk et al., 2005). The fleet's reference is the median of
its entities' own reference quantiles over all their samples (no lag: one entity's
precursor cannot move a median); it applies once 3 entities have `fleet_min_reference` of
history. An entity's own reference counts from `fleet_min_reference` of its own (lagged)
history on; until its history spans `min_reference` (default a day: one daily cycle, so a nightly
backup has been seen once), the risk must also reach the prior `cold_threshold` (a cold
start, a new pod of a rollout): a few hours say little about what is usual for the entity.

The other way round, a *sustained extreme anomaly* raises level 0 (the consensus's own, or
a level this stage lowered as usual) to a warning: where the calibrated topology anomaly
score (exporter/tda/baseline.py: a tail probability under the entity's own history) has
stayed at or above `sustained_anomaly_threshold` at every cycle for `sustained_anomaly_for`
(cycles at most max(`sample_every`, half that) apart), and the history the score is
calibrated on spans `sustained_anomaly_min_history`, and, where the failure model forecasts
for the entity, once it has given a failure within its largest horizon at least the warning
risk at a cycle of the run (`_sustained`). No mechanism agent has to see it (the failure
model, where it forecasts, must back it): on servers whose capacities are unknown (min-max
scaled metrics, ASD) the incidents are "unusual", not "filling up", and no mechanism agent
speaks for them. Rarity is the
entity's own (1 in 500 windows at 0.998), held for half an hour, and only once the score
has a calibrated history (two daily cycles); measured in benchmarks/README.md ("Sustained
anomalies"). A run whose window holds a counter reset (`exporter.windows.counter_resets`:
an uptime or a counter from 0 after a crash, a redeploy, an OOM kill) at any of its cycles
before this rule raised it never raises the level, however long it lasts: a process or
host that came back differs from its history (caches refilling, a disk cleaned) for hours
or days without failing (measured on the independent fleets: benchmarks/README.md,
"Restarts"). The explanation says so; a run that starts once the reset has left the
window counts again. The rule needs a signal that resets on a restart (an uptime,
`time() - process_start_time_seconds`, or a counter not wrapped in `rate()`); without
one, nothing is excused. Off where the topology agent is disabled. Undecided entities
(level -1) are left as they are.

Fleet-wide events (`fleet_wide_needed`): where more entities of the analysis reached a level
(their own, or one raised by a sustained anomaly) within `fleet_wide_window` than independent
alerts would (a binomial tail under `fleet_wide_alpha`, every entity alerting independently at
FLEET_WIDE_RATE times the alert budget's rate), the cause is shared: a traffic surge that
saturates every worker, a rolling deploy, a slow dependency, a fleet-wide scrape gap. Those
entities' levels are held at 0 with an explanation saying so: a per-entity failure alert is
the wrong page for it (Alertmanager would group N of them into one notification; the shared
cause is a service-level alert's). Entities that reached a level within the window count even
if they are quiet or absent now; an entity already at a level before the event began (a
failure developing for hours) is not part of it and keeps its level. A scan statistic in the
spirit of Kulldorff (1997), with
the null rate from the configured budget instead of an estimate (one surge a day would
otherwise teach the fleet that surges are independent). Measured on an independent
generator's fleets and on ASD (benchmarks/README.md, "Fleet-wide events").

Shapes: E entities per cycle, R reference samples per entity (reference / sample_every).
State is three ring buffers [E, R] keyed by the entity's labels, risk (float32, NaN =
empty), sample time (uint32 Unix seconds) and leading signal (uint8, NO_LEAD unknown): 3.9 KB
per entity at the defaults (3 days at 10 minutes), 39 MB at 10 000 entities; plus, per
entity, the start and last cycle of a run of
extreme anomaly scores, the starts of the runs this rule raised or a restart excused, the
last cycle it reached a level and the start of that run at a level, and the last cycles the
failure model forecast for it and backed it (eight float64); what a cycle computes from them
goes ROW_BLOCK entities at a time (a few MiB of temporaries however many entities there are).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from exporter.cascade import Symptoms, propagating_signals, symptoms
from exporter.config import DecisionConfig, SignalConfig
from exporter.numeric import nan_percentile
from exporter.results import Consensus, Forecast, TopologyResult
from exporter.util import format_duration, humanize_seconds
from exporter.windows import (
    NO_DATA_STEPS,
    EntityKey,
    counter_resets,
    decode_entity_key,
    encode_entity_key,
    no_recent_samples,
)

# An alert of a benign pattern typically lasts about this long; the budget of alerts per
# entity-day becomes a budget of reference samples above the threshold per day.
TYPICAL_ALERT_SECONDS = 3600.0
# A risk must clear the threshold by this much to count as rare (risks are stored as float32,
# and a model's risk wobbles by about this much between cycles on an unchanged entity).
MARGIN = 0.02
# What may set a threshold (Decision.bound), in the order DecisionStage.decide stacks them.
BOUNDS = ("own", "fleet", "cold", "daily")
# A daily pattern (exporter.decision.DecisionStage._same_phase): the same time of day +- this
# many seconds on earlier days; it applies where the risk then reached PHASE_MIN_RISK, and the
# risk must now exceed that with odds PHASE_ODDS times higher.
PHASE_HALF_WIDTH = 5400.0
PHASE_MIN_RISK = 0.5
PHASE_ODDS = math.e ** 0.5
# Rows per block of the reference computations: their temporaries stay a few MiB
# ([ROW_BLOCK, R] float64 = 3.6 MiB at 440 slots) however many entities there are.
ROW_BLOCK = 1024
# How often entities unseen for longer than the reference are forgotten (seconds).
FORGET_EVERY = 3600.0
# The fleet reference needs this many entities with enough history of their own.
FLEET_MIN_ENTITIES = 3
# What an explanation says where a restart excuses a sustained anomaly (`gate`; the backtest
# report finds held runs by it).
RESTART_EXCUSE = "is not raised: it came with a restart"
# A sustained anomaly raises a level only where the failure model, when it forecasts for the
# entity, gave a failure within its largest horizon at least this probability during the run
# (`_sustained`): by default the consensus's default warning risk; `gate` passes the
# configured `agents.consensus.warning_risk`, the bar any agent's vote must reach to count
# towards a level.
CORROBORATE_FORECAST = 0.5
# Fleet-wide events (`fleet_wide_needed`): never fewer entities than this; independent alerts
# at this many times the budget's rate (benign ones and, as often, real failures).
FLEET_WIDE_MIN = 3
FLEET_WIDE_RATE = 2.0
# How an explanation of a level held by a fleet-wide event starts (the backtest report finds
# held runs by it).
FLEET_WIDE = "fleet-wide"
# How a level held as another entity's symptom (exporter.cascade) starts its explanation.
SYMPTOM = "symptom of"
# How many of the entities held as its symptoms an alerting entity's explanation names.
FOLLOWERS_NAMED = 5
_STATE_VERSION = 2
# A reference sample whose leading signal is not known (learned before leads were kept, or
# with no signal contributing): it counts against every signal.
NO_LEAD = 255


class DecisionError(RuntimeError):
    """The decision stage cannot gate this cycle (bad shapes); the pipeline counts it."""


@dataclass(frozen=True)
class Decision:
    """What the stage decided for each entity of one cycle.

    level: [E] the gated level (0 ok, 1 warning, 2 critical, -1 undecided kept as is).
    threshold: [E] the highest of the entity's own and the fleet's reference quantiles, the
        cold-start floor and the daily-pattern bar; a level needs a risk above threshold +
        MARGIN; NaN while no reference applies.
    own_samples: [E] reference samples of the entity itself.
    suppressed: [E] bool, a level >= 1 was lowered to 0 because the risk is usual.
    bound: [E] which of them set the threshold: one of BOUNDS ("" where none applies).
    phase_high: [E] the earlier risk at this time of day behind the daily-pattern bar (NaN
        where there is none).
    escalated: [E] bool, level 0 raised to 1 by a sustained extreme anomaly (also where
        this stage lowered the level as usual first: `suppressed` and `escalated` both True).
    anomaly_since: [E] Unix seconds since when the anomaly score has stayed at or above
        `sustained_anomaly_threshold` (NaN where it is below or unknown).
    excused: [E] bool, a sustained extreme anomaly would raise level 0 but its run came
        with a restart (a counter reset in the window), so it does not.
    fleet_wide: [E] bool, a level >= 1 (its own, or raised by a sustained anomaly) held at 0
        because too many entities reached one at once (`fleet_wide_needed`).
    elevated_now: how many entities are in the fleet-wide group: at a level within
        `fleet_wide_window` (this cycle included, before the hold), in a run that began
        within the window or since an event began (`_fleet_wide`); fleet_wide_needed: how
        many make a fleet-wide event (0: the rule is off or the analysis too small).
    own_span: [E] seconds of the entity's own risk history the reference holds (0 where
        none, and everywhere while the stage is disabled; the span an explanation names).
    symptoms: which entities at a level, not held by a fleet-wide event, were held at 0
        as another entity's symptom (`exporter.cascade.symptoms`: `source` >= 0); None
        where the rule did not run.
    """

    level: np.ndarray
    threshold: np.ndarray
    own_samples: np.ndarray
    suppressed: np.ndarray
    bound: np.ndarray
    phase_high: np.ndarray
    escalated: np.ndarray
    anomaly_since: np.ndarray
    excused: np.ndarray
    fleet_wide: np.ndarray | None = None
    elevated_now: int = 0
    fleet_wide_needed: int = 0
    own_span: np.ndarray | None = None
    symptoms: Symptoms | None = None


def threshold_quantile(alert_budget: float, sample_every: float) -> float:
    """Reference quantile that lets benign behaviour spend about `alert_budget` alerts a day.

    A benign pattern that alerts for about TYPICAL_ALERT_SECONDS keeps the risk above the
    threshold for that long, i.e. for TYPICAL_ALERT_SECONDS / sample_every reference samples;
    `alert_budget` such alerts a day are a share `budget * TYPICAL_ALERT_SECONDS / 86400`
    of the samples, so the threshold is the quantile 1 - that share (clipped to [0.5, 1]).
    """
    share = max(alert_budget, 0.0) * TYPICAL_ALERT_SECONDS / 86400.0
    return float(min(max(1.0 - share, 0.5), 1.0))


@functools.lru_cache(maxsize=256)
def fleet_wide_needed(entities: int, alert_budget: float, window: float, alpha: float) -> int:
    """How many of `entities` reaching a level within `window` seconds make a fleet-wide event:
    the smallest k >= FLEET_WIDE_MIN whose binomial tail P(X >= k) is below `alpha`, X the
    number of entities at a level if each alerts independently at FLEET_WIDE_RATE times the
    budget's rate (`alert_budget` alerts a day of TYPICAL_ALERT_SECONDS each; within the
    window: p = rate x budget x (TYPICAL_ALERT_SECONDS + window) / day). 0 where `alpha` is 0
    (off) or the analysis has fewer than FLEET_WIDE_MIN entities. With the defaults (budget
    0.05, 30 min, alpha 1e-4): 3 of 8 entities, 4 of 36, 5 of 58, 6 of 100, 95 of 10 000.
    (scipy.stats.binom: `isf(alpha)` is the smallest k with P(X > k) <= alpha; + 1.)"""
    if alpha <= 0 or entities < FLEET_WIDE_MIN:
        return 0
    from scipy.stats import binom

    p = min(FLEET_WIDE_RATE * max(alert_budget, 0.0) * (TYPICAL_ALERT_SECONDS + window)
            / 86400.0, 1.0)
    if p <= 0:
        return FLEET_WIDE_MIN
    k = int(binom.isf(alpha, entities, p)) + 1
    return max(k, FLEET_WIDE_MIN) if k <= entities else 0


class DecisionStage:
    """Per-entity risk references and the gated level (see the module docstring).

    Parameters
    ----------
    cfg: the `agents.decision` settings.
    exclude_recent: seconds of the newest history left out of the reference (the analysis'
        largest horizon when the config says 0).
    row_block: entities per block of the reference computations (memory only: the results
        do not depend on it).
    """

    def __init__(self, cfg: DecisionConfig, exclude_recent: float, row_block: int = ROW_BLOCK):
        self.cfg = cfg
        self.row_block = max(int(row_block), 1)
        self.exclude_recent = float(cfg.exclude_recent) or float(exclude_recent)
        self.sample_every = float(cfg.sample_every)
        self.slots = max(int(math.ceil(float(cfg.reference) / self.sample_every)), 1)
        self.quantile = threshold_quantile(cfg.alert_budget, self.sample_every)
        self.fleet_min_samples = max(int(float(cfg.fleet_min_reference) / self.sample_every), 1)
        self.rows_: dict[EntityKey, int] = {}
        self.risk_ = np.full((0, self.slots), np.nan, dtype=np.float32)
        self.time_ = np.zeros((0, self.slots), dtype=np.uint32)  # Unix s; empty: risk NaN
        # The signal that led each sample's risk (its largest contribution; NO_LEAD unknown).
        self.lead_ = np.full((0, self.slots), NO_LEAD, dtype=np.uint8)
        self.last_ = np.empty(0, dtype=np.float64)  # last admission time per row
        # Per row: since when the anomaly score has stayed at or above the sustained-anomaly
        # threshold, and the last cycle it was (Unix s; NaN: not in a run).
        self.since_ = np.empty(0, dtype=np.float64)
        self.hot_ = np.empty(0, dtype=np.float64)
        # Per row: the start of the run this rule raised, and of the run a restart excused
        # (NaN: none).
        self.raised_ = np.empty(0, dtype=np.float64)
        self.excused_ = np.empty(0, dtype=np.float64)
        # Per row: the last cycle the failure model gave a failure within its largest
        # horizon at least the bar, and the last it forecast for the row at all (NaN: never).
        self.backed_ = np.empty(0, dtype=np.float64)
        self.seen_ = np.empty(0, dtype=np.float64)
        # Per row: the last cycle it reached a level (before a fleet-wide hold; NaN: never)
        # and when its current run at a level began; since when a fleet-wide event has held
        # (NaN: none under way).
        self.lit_ = np.empty(0, dtype=np.float64)
        self.onset_ = np.empty(0, dtype=np.float64)
        self.event_since_ = math.nan
        self.excluded_: list[tuple[EntityKey, float, float, float]] = []
        self.forgot_at_ = -math.inf
        # What the references hold, for the quantile cache (see `_quantiles`): a counter
        # bumped when rows are added, forgotten or restored, a sample is blanked, or one is
        # learned no later than `_newest` (an upper bound of the sample times held).
        self._version = 0
        self._newest = -1
        # (signature, quantiles, counts) of the last `_quantiles` call, lagged or not.
        self._last_quantiles: dict[bool, tuple[_Signature, np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ public

    def decide(self, entities: Sequence[EntityKey], risk: np.ndarray, level: np.ndarray,
               now: float, anomaly: np.ndarray | None = None,
               history: np.ndarray | None = None,
               values: np.ndarray | None = None,
               forecast: np.ndarray | None = None,
               forecast_bar: float = CORROBORATE_FORECAST,
               lead: np.ndarray | None = None,
               window: np.ndarray | None = None,
               propagating: np.ndarray | None = None) -> Decision:
        """Gate `level` [E] by how rare `risk` [E] (0..1, NaN = undecided) is; raise level 0
        to 1 where the calibrated `anomaly` score [E] (0..1, NaN unknown; None: no topology
        this cycle) has stayed extreme (see the module docstring), given the seconds of
        `history` [E] it is calibrated on (None: the span of the entity's own risk
        reference stands in), the cycle's window `values` [E, S, T] (None: no
        counter reset is known; see `_sustained`) and the failure model's probability of a
        failure within its largest horizon `forecast` [E] (0..1, NaN: no forecast for the
        entity; None: none this cycle), which must reach `forecast_bar` during a run (see
        `_sustained`); then learn the risk.

        `lead` [E] (signal index, -1 or NO_LEAD: unknown; None: none known) names the signal
        that leads each risk (the consensus's largest contribution). An entity at a level is
        then judged against its own reference and daily pattern with the samples another
        signal led counted as risk 0 (`_by_lead`, `_same_phase`): a disk's log-rotation
        sawtooth that reaches risk 0.8 every two hours is usual for the disk, not for a
        memory leak that starts on the same host. The fleet's bar reads every sample,
        whatever led it (measured: benchmarks/README.md, "References by leading signal").
        It is learned with the risk.

        With the cycle's window `window` [E, S, T] and which of its signals carry a
        dependency's failure to its callers `propagating` [S] bool (kinds `errors`,
        `latency`), an entity at a level whose leading signal follows another entity's,
        which rose more (`exporter.cascade.symptoms`, `symptom_correlation`,
        `symptom_rise_ratio`), is held at 0 as that entity's symptom; the rule reads the
        entities a fleet-wide event does not hold (a database and its two callers that make
        one in a small fleet are held together, and AuraFleetWideEvent fires instead).

        Raises DecisionError when the arrays do not match `entities`.
        """
        risk = np.asarray(risk, dtype=np.float64)
        level = np.asarray(level, dtype=np.int64)
        e = len(entities)
        if risk.shape != (e,) or level.shape != (e,):
            raise DecisionError(f"risk {risk.shape} / level {level.shape} for {e} entities")
        for name, arr in (("anomaly", anomaly), ("history", history), ("forecast", forecast),
                          ("lead", lead)):
            if arr is not None and np.shape(arr) != (e,):
                raise DecisionError(f"{name} {np.shape(arr)} for {e} entities")
        for name, win in (("window values", values), ("symptom window", window)):
            if win is not None and (np.ndim(win) != 3 or np.shape(win)[0] != e):
                raise DecisionError(f"{name} {np.shape(win)} for {e} entities")
        if window is not None and propagating is not None \
                and np.shape(propagating) != (np.shape(window)[1],):
            raise DecisionError(f"propagating {np.shape(propagating)} for a window of "
                                f"{np.shape(window)[1]} signals")
        rows = self._rows(entities, now)
        threshold = np.full(e, np.nan)
        own_n = np.zeros(e, dtype=np.int64)
        bound = np.full(e, "", dtype=object)
        phase_high = np.full(e, np.nan)
        span = np.zeros(e)
        if self.cfg.enabled and e:
            own_all, own_n_all = self._quantiles(now, lagged=True)
            own_n = own_n_all[rows]
            # The fleet's typical entity: the median of the entities' own thresholds over all
            # their samples (no lag: one entity's precursor cannot move a median), robust to
            # the few entities whose reference holds a real failure or an odd pattern.
            fleet_all, fleet_n = self._quantiles(now, lagged=False)
            known = fleet_n >= self.fleet_min_samples
            fleet = float(np.median(fleet_all[known])) if known.sum() >= FLEET_MIN_ENTITIES \
                else np.nan
            # Whatever own history there is counts at once (an entity whose first hours
            # already show high risks is not judged by the fleet alone) ...
            own = np.where(own_n >= self.fleet_min_samples, own_all[rows], np.nan)
            # ... but until its history spans `min_reference` (a cold start, a new pod), its
            # risk must also reach the prior `cold_threshold`: a few hours say little about
            # what is usual for this entity (its nightly backup has not happened yet). The
            # span counts every sample (the lag only keeps a precursor out of its reference);
            # a live cold start seeded from its bootstrap history is past it at once.
            span = self._span(rows, now)
            floor = np.where(span < float(self.cfg.min_reference)
                             - self.sample_every, float(self.cfg.cold_threshold) - MARGIN,
                             -np.inf)
            bar, phase_high = self._same_phase(rows, now)
            parts = np.stack([own, np.full(e, fleet), floor, bar])  # BOUNDS order
            # An entity at a level is read against its own samples its leading signal led
            # (`_by_lead`, `_same_phase`); the fleet's bar reads every sample.
            led = np.zeros(e, dtype=bool) if lead is None else \
                (level >= 1) & (np.asarray(lead) >= 0) & (np.asarray(lead) < NO_LEAD)
            if led.any():
                sub = np.flatnonzero(led)
                s_lead = np.asarray(lead, dtype=np.int64)[sub]
                parts[0, sub] = np.where(own_n[sub] >= self.fleet_min_samples,
                                         self._by_lead(rows[sub], s_lead, now), np.nan)
                parts[3, sub], phase_high[sub] = self._same_phase(rows[sub], now, s_lead)
            threshold = np.fmax.reduce(parts, axis=0)
            pick = np.argmax(np.where(np.isnan(parts), -np.inf, parts), axis=0)
            bound = np.where(np.isfinite(threshold), np.array(BOUNDS, dtype=object)[pick], "")
        elevated = level >= 1
        usual = elevated & np.isfinite(threshold) & ~(np.nan_to_num(risk, nan=-1.0)
                                                       > threshold + MARGIN)
        gated = np.where(usual, 0, level)
        escalated, since, excused = self._sustained(rows, anomaly, history, now, values,
                                                    forecast, forecast_bar)
        escalated &= gated == 0
        lit = (gated >= 1) | escalated
        wide, count, needed = self._fleet_wide(rows, lit, now)
        escalated &= ~wide
        # Symptoms, among the entities a fleet-wide event does not hold (symptoms that leave
        # its count let the rest of a wide cascade page; a cause that a hold spares pages
        # for a shared event too: both measured, benchmarks/README.md).
        sym = None
        if window is not None and propagating is not None and (lit & ~wide).any() \
                and float(self.cfg.symptom_correlation) > 0:
            sym = symptoms(window, lit & ~wide,
                           np.full(e, -1) if lead is None else np.asarray(lead), propagating,
                           float(self.cfg.symptom_correlation),
                           float(self.cfg.symptom_rise_ratio))
        symptom = np.zeros(e, dtype=bool) if sym is None else sym.source >= 0
        escalated &= ~symptom
        self.raised_[rows[escalated]] = since[escalated]
        gated = np.where(escalated, 1, gated)
        gated = np.where(wide | symptom, 0, gated)
        self._learn(rows, risk, now, lead)
        return Decision(gated, threshold, own_n, usual, bound, phase_high, escalated, since,
                        excused & (gated == 0) & ~wide, wide, count, needed, span, sym)

    def exclude(self, spans: Iterable[tuple[EntityKey, float, float | None]]) -> None:
        """Leave (entity, start, end) spans out of the reference (recorded incidents).

        The span starts `exclude_recent` before the incident (its precursor) and ends at its
        end (open: now and later). A span applies from the incident's start on (a replay may
        announce incidents early; what is decided before they start must not know them).
        """
        for key, start, end in spans:
            span = (tuple(key), float(start) - self.exclude_recent,
                    math.inf if end is None else float(end), float(start))
            # The same incident again (its resolution): the new end replaces the open one.
            self.excluded_ = [x for x in self.excluded_ if (x[0], x[3]) != (span[0], span[3])]
            self.excluded_.append(span)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to persist (`restore` reads them back); entity keys as encoded strings."""
        keys = sorted(self.rows_, key=self.rows_.__getitem__)
        return {
            "version": np.array([_STATE_VERSION]),
            "keys": np.array([encode_entity_key(k) for k in keys], dtype=str),
            "risk": self.risk_, "time": self.time_, "last": self.last_, "lead": self.lead_,
            "anomaly_since": self.since_, "anomaly_last": self.hot_,
            "anomaly_raised": self.raised_, "anomaly_excused": self.excused_,
            "anomaly_backed": self.backed_, "forecast_seen": self.seen_,
            "level_last": self.lit_, "level_onset": self.onset_,
            "fleet_wide_since": np.array([self.event_since_]),
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Load `state()` arrays; raise ValueError when they do not fit this configuration."""
        version = arrays.get("version")
        if version is None or int(np.asarray(version).ravel()[0]) != _STATE_VERSION:
            raise ValueError("decision state: unknown version")
        # Copies: the stage updates its arrays in place, the caller keeps what it passed.
        risk = np.array(arrays["risk"], dtype=np.float32)
        times = np.array(arrays["time"], dtype=np.uint32)
        last = np.array(arrays["last"], dtype=np.float64)
        keys = [decode_entity_key(str(k)) for k in np.asarray(arrays["keys"]).ravel()]
        n = len(keys)
        if risk.shape != (n, self.slots) or times.shape != (n, self.slots) or last.shape != (n,):
            raise ValueError(f"decision state: shapes {risk.shape} / {times.shape} do not fit "
                             f"{n} entities x {self.slots} slots")
        # Saved before the last level and its run were kept (level_last, level_onset): none
        # in the fleet-wide window.
        # Saved before sustained anomalies were tracked: no run in progress. Saved before
        # raised and excused runs were: none excused, and a run in progress that has lasted
        # long enough counts as raised (a firing warning is not withdrawn by a later restart).
        runs = []
        # Saved before the failure model's backing was kept: none seen.
        for name in ("anomaly_since", "anomaly_last", "anomaly_raised", "anomaly_excused",
                     "level_last", "level_onset", "anomaly_backed", "forecast_seen"):
            arr = np.array(arrays.get(name, np.full(n, np.nan)), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"decision state: {name} {arr.shape} for {n} entities")
            runs.append(arr)
        # Saved before leads were kept: every sample's lead unknown (it counts for all).
        leads = np.array(arrays.get("lead", np.full((n, self.slots), NO_LEAD)), dtype=np.uint8)
        if leads.shape != (n, self.slots):
            raise ValueError(f"decision state: lead {leads.shape} does not fit {n} entities x "
                             f"{self.slots} slots")
        self.rows_ = {k: i for i, k in enumerate(keys)}
        self.risk_, self.time_, self.last_, self.lead_ = risk, times, last, leads
        (self.since_, self.hot_, self.raised_, self.excused_, self.lit_, self.onset_,
         self.backed_, self.seen_) = runs
        event = np.asarray(arrays.get("fleet_wide_since", [np.nan]), dtype=np.float64).ravel()
        self.event_since_ = float(event[0]) if event.size else math.nan
        if "anomaly_raised" not in arrays:
            with np.errstate(invalid="ignore"):
                long = self.hot_ - self.since_ >= float(self.cfg.sustained_anomaly_for) - 1e-6
            self.raised_ = np.where(long, self.since_, np.nan)
        self._version += 1
        self._newest = int(times.max()) if times.size else -1

    # ----------------------------------------------------------------- private

    def _forget(self, now: float) -> None:
        """Drop entities with no sample inside any reference any more (gone pods, renamed
        hosts), so a churning fleet does not grow the state without bound."""
        horizon = float(self.cfg.reference) + self.exclude_recent
        stale = self.last_ < now - horizon
        if not stale.any():
            return
        keep = np.flatnonzero(~stale)
        keys = sorted(self.rows_, key=self.rows_.__getitem__)
        self.rows_ = {keys[i]: j for j, i in enumerate(keep)}
        self.risk_, self.time_, self.last_ = self.risk_[keep], self.time_[keep], self.last_[keep]
        self.lead_ = self.lead_[keep]
        self.since_, self.hot_ = self.since_[keep], self.hot_[keep]
        self.raised_, self.excused_ = self.raised_[keep], self.excused_[keep]
        self.lit_, self.onset_ = self.lit_[keep], self.onset_[keep]
        self.backed_, self.seen_ = self.backed_[keep], self.seen_[keep]
        self._version += 1

    def _rows(self, entities: Sequence[EntityKey], now: float) -> np.ndarray:
        if now - self.forgot_at_ >= FORGET_EVERY:
            self.forgot_at_ = now
            self._forget(now)
        new = [k for k in entities if k not in self.rows_]
        if new:
            start = len(self.rows_)
            for i, k in enumerate(new):
                self.rows_[k] = start + i
            grow = len(new)
            self.risk_ = np.vstack([self.risk_, np.full((grow, self.slots), np.nan, np.float32)])
            self.time_ = np.vstack([self.time_, np.zeros((grow, self.slots), np.uint32)])
            self.lead_ = np.vstack([self.lead_, np.full((grow, self.slots), NO_LEAD, np.uint8)])
            self.last_ = np.concatenate([self.last_, np.full(grow, -np.inf)])
            self.since_ = np.concatenate([self.since_, np.full(grow, np.nan)])
            self.hot_ = np.concatenate([self.hot_, np.full(grow, np.nan)])
            self.raised_ = np.concatenate([self.raised_, np.full(grow, np.nan)])
            self.excused_ = np.concatenate([self.excused_, np.full(grow, np.nan)])
            self.lit_ = np.concatenate([self.lit_, np.full(grow, np.nan)])
            self.onset_ = np.concatenate([self.onset_, np.full(grow, np.nan)])
            self.backed_ = np.concatenate([self.backed_, np.full(grow, np.nan)])
            self.seen_ = np.concatenate([self.seen_, np.full(grow, np.nan)])
            self._version += 1
        return np.fromiter((self.rows_[k] for k in entities), dtype=np.int64,
                           count=len(entities))

    def _quantiles(self, now: float, lagged: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per known entity: the reference quantile of its risks and how many samples it has.

        lagged: leave out the newest `exclude_recent` (the entity's own reference).
        Rows are taken `row_block` at a time; the result is the one-block computation's, bit
        for bit (`nan_percentile` takes the same path in every block as it would on all).
        """
        if self.excluded_:
            self._drop_excluded(now)
        lag = self.exclude_recent if lagged else 0.0
        bounds = _window(now - float(self.cfg.reference) - lag, now - lag)
        n = len(self.risk_)
        blocks = [slice(b, b + self.row_block) for b in range(0, n, self.row_block)]
        tally = np.zeros((2, n), dtype=np.int64)  # per row: samples, sum of their times
        counts, sums = tally
        kept: list[np.ndarray] = []  # the references themselves when they are one block
        for rb in blocks:
            ref = np.where(_inside(self.time_[rb], bounds), self.risk_[rb], np.float32(np.nan))
            valid = ~np.isnan(ref)
            counts[rb] = valid.sum(axis=1)
            sums[rb] = (self.time_[rb] * valid).sum(axis=1, dtype=np.int64)
            if len(blocks) == 1:
                kept.append(ref)
        # The references change only when a sample enters, leaves or is blanked: cycles in
        # between (a step below `sample_every`, the lagged reference after a sample is learned
        # outside it) reuse the last answer. Exact: with the version unchanged, a sample is
        # never changed, only dropped (aged out, overwritten) or added (entering the window as
        # it moves forward, or learned later than every sample held), so every sample added
        # to a row's reference is newer than every one dropped, and its count and sum of
        # sample times cannot both stay the same unless none was.
        signature = _Signature(self._version, bounds, tally)
        last = self._last_quantiles.get(lagged)
        if last is not None and last[0].holds_as(signature):
            return last[1].copy(), last[2].copy()
        out = np.full(n, np.nan)
        some = counts > 0
        # The sort path in every block, NaN present or not: np.percentile's bits where there
        # is none (tests/test_replay_speed_identity.py), ~6x faster on [48, 432] without NaN.
        q = [100.0 * self.quantile]
        for rb in blocks:
            pick = some[rb]
            if not pick.any():
                continue
            ref = kept[0] if kept else np.where(_inside(self.time_[rb], bounds), self.risk_[rb],
                                                np.float32(np.nan))
            if not pick.all():
                ref = ref[pick]
            out[rb][pick] = nan_percentile(ref, q, axis=1, always_sort=True)[0]
        self._last_quantiles[lagged] = (signature, out, counts)
        return out.copy(), counts.copy()

    def _by_lead(self, rows: np.ndarray, lead: np.ndarray, now: float) -> np.ndarray:
        """Per row: the quantile of its own (lagged) reference, as `_quantiles`, with the
        samples a signal other than `lead` [rows] led counted as risk 0 (unknown leads count
        as they are); NaN where the row has no sample in the reference. Only the rows at a
        level are asked (a few per cycle): not cached. `decide` calls `_quantiles` first,
        which has blanked the excluded spans."""
        lag = self.exclude_recent
        bounds = _window(now - float(self.cfg.reference) - lag, now - lag)
        out = np.full(len(rows), np.nan)
        q = [100.0 * self.quantile]
        for b in range(0, len(rows), self.row_block):
            rb = rows[b:b + self.row_block]
            ref = np.where(_inside(self.time_[rb], bounds), self.risk_[rb], np.float32(np.nan))
            other = ~_same_lead(self.lead_[rb], lead[b:b + self.row_block]) & ~np.isnan(ref)
            ref = np.where(other, np.float32(0.0), ref)
            some = ~np.isnan(ref).all(axis=1)
            if some.any():
                part = out[b:b + self.row_block]
                part[some] = nan_percentile(ref[some], q, axis=1, always_sort=True)[0]
        return out

    def _same_phase(self, rows: np.ndarray, now: float,
                    lead: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the threshold a daily pattern sets (-inf where there is none) and the
        earlier risk it comes from (NaN where none); with `lead` [rows] (signal indices),
        only earlier samples that signal led (or whose lead is unknown) count.

        The highest reference risk within PHASE_HALF_WIDTH of this time of day on each earlier
        day the reference holds; where that reached PHASE_MIN_RISK (risk 0.5: the entity was
        at an alert's level at this hour and nothing was recorded), the risk must now exceed
        it by the odds factor PHASE_ODDS: a daily surge or batch job peaks a little higher on
        some days than on others, and a recurring pattern must not page whenever it does.
        Near 1 the bar is capped at max(earlier risk, 1 - 2 MARGIN), so it never asks for
        more than the entity's own maximum would (0.97 earlier: above 0.99 now, not never).
        """
        high = np.full(len(rows), -np.inf)
        days = int(float(self.cfg.reference) // 86400)
        near_day = []
        for k in range(1, days + 1):
            at = now - k * 86400.0

            def same_hour(t: float, at: float = at) -> bool:
                return abs(t - at) <= PHASE_HALF_WIDTH
            near_day.append(_time_bounds(same_hour, at - PHASE_HALF_WIDTH, at + PHASE_HALF_WIDTH))
        for b in range(0, len(rows), self.row_block):
            rb = rows[b:b + self.row_block]
            t, r = self.time_[rb], self.risk_[rb]
            hit = np.zeros(t.shape, dtype=bool)  # near this hour on any earlier day
            for bounds in near_day:
                hit |= _inside(t, bounds)
            hit &= ~np.isnan(r)
            if lead is not None:
                hit &= _same_lead(self.lead_[rb], lead[b:b + self.row_block])
            high[b:b + self.row_block] = np.max(np.where(hit, r, np.float32(-np.inf)), axis=1,
                                                initial=-np.inf)
        p = np.clip(high, 1e-6, 1 - 1e-6)
        odds = PHASE_ODDS * p / (1 - p)
        bar = np.minimum(odds / (1 + odds), np.maximum(high, 1.0 - 2 * MARGIN))
        applies = high >= PHASE_MIN_RISK
        return np.where(applies, bar, -np.inf), np.where(applies, high, np.nan)

    def _fleet_wide(self, rows: np.ndarray, lit: np.ndarray,
                    now: float) -> tuple[np.ndarray, int, int]:
        """([E] the entities `lit` [E] (at a level this cycle) held as a fleet-wide event,
        how many entities are in the event's group, how many make an event); records this
        cycle's levels.

        The group: entities at a level within `fleet_wide_window` whose run at a level began
        within the window (or, once an event is under way, since it began). A run lasts while
        the entity reaches a level at least once per window. An entity that was already at a
        level before the event began (a failure developing for hours) is not part of it and
        is not held; entities absent this cycle count while their last level is inside the
        window (a host that went quiet during a surge)."""
        window = float(self.cfg.fleet_wide_window)
        with np.errstate(invalid="ignore"):
            new_run = lit & ~(self.lit_[rows] >= now - window + 1e-6)
        self.onset_[rows[new_run]] = now
        self.lit_[rows[lit]] = now
        none = np.zeros(len(rows), dtype=bool)
        if not self.cfg.enabled:  # off with the stage (no AuraFleetWideEvent is generated)
            self.event_since_ = math.nan
            return none, 0, 0
        active = math.isfinite(self.event_since_)
        since = self.event_since_ if active else now - window
        with np.errstate(invalid="ignore"):
            group = (self.lit_ >= now - window + 1e-6) & (self.onset_ >= since - 1e-6)
        count = int(group.sum())
        needed = fleet_wide_needed(len(rows), float(self.cfg.alert_budget), window,
                                   float(self.cfg.fleet_wide_alpha))
        if not needed or count < needed:
            self.event_since_ = math.nan
            return none, count, needed
        if not active:
            self.event_since_ = since
        with np.errstate(invalid="ignore"):
            return lit & (self.onset_[rows] >= since - 1e-6), count, needed

    def _sustained(self, rows: np.ndarray, anomaly: np.ndarray | None,
                   history: np.ndarray | None, now: float,
                   values: np.ndarray | None = None,
                   forecast: np.ndarray | None = None,
                   forecast_bar: float = CORROBORATE_FORECAST,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: whether a sustained extreme anomaly raises the level, since when the
        score has stayed at or above `sustained_anomaly_threshold` (NaN: below it, or
        unknown), and whether a run long enough to raise it is excused by a restart.

        A run of extreme scores starts at the first cycle at or above the threshold and ends
        at the first below it or without a score (NaN, or a cycle without topology); a cycle
        more than max(`sample_every`, half of `sustained_anomaly_for`) after the run's last
        one starts a new run (the entity was absent, or the state was restored after
        downtime: "every cycle" cannot be known across the gap). The run raises the level
        once it has lasted `sustained_anomaly_for` and `history` (else the row's reference
        span) reaches `sustained_anomaly_min_history`, unless the window `values` [E, S, T]
        held a counter reset (`exporter.windows.counter_resets`) at a cycle of the run before
        this rule raised it (`decide` records `raised_`), up to and including the cycle that
        would: from then on the run is the restart's. Only rows in such a run are checked,
        `row_block` at a time; a run raised already stays raised.

        Where the failure model forecasts for the entity (`forecast` [E] finite at some
        cycle of the run), a run raises the level only once the model's probability of a
        failure within its largest horizon has reached `forecast_bar` at a cycle of the
        run: rarity alone is what benign first-time events have too (a week's first Sunday
        full backup on every replica, the first Monday morning after a weekend, a batch
        host's heavier night). Where it has not forecast for the entity at any cycle of the
        run (no model, the model abstains for the analysis' window or step, the forecast
        agent is off) rarity alone raises it, as before; a cycle without a forecast (the
        forecast stage failed) amid cycles with one does not. Measured: benchmarks/README.md,
        "Sustained anomalies the failure model backs".
        """
        e = len(rows)
        cfg = self.cfg
        threshold = float(cfg.sustained_anomaly_threshold)
        if anomaly is None or not cfg.enabled or threshold >= 1.0 or e == 0:
            self.since_[rows] = np.nan
            self.hot_[rows] = np.nan
            self.raised_[rows] = np.nan
            self.excused_[rows] = np.nan
            return np.zeros(e, dtype=bool), np.full(e, np.nan), np.zeros(e, dtype=bool)
        gap = max(self.sample_every, float(cfg.sustained_anomaly_for) / 2)
        with np.errstate(invalid="ignore"):
            hot = np.asarray(anomaly, dtype=np.float64) >= threshold
            going = now - self.hot_[rows] <= gap  # NaN (no run): False
        since = np.where(hot, np.where(going, np.fmin(self.since_[rows], now), now), np.nan)
        lasted = float(cfg.sustained_anomaly_for) - 1e-6
        if values is not None:
            # Runs neither raised by this rule nor excused yet (NaN == x is False).
            check = np.flatnonzero(hot & ~(self.raised_[rows] == since)
                                   & ~(self.excused_[rows] == since))
            for b in range(0, len(check), self.row_block):
                part = check[b:b + self.row_block]
                part = part[counter_resets(np.asarray(values)[part])]
                self.excused_[rows[part]] = since[part]
        self.since_[rows] = since
        self.hot_[rows] = np.where(hot, now, np.nan)
        with np.errstate(invalid="ignore"):
            held = hot & (now - since >= lasted)
            f = np.full(e, np.nan) if forecast is None else \
                np.asarray(forecast, dtype=np.float64)
            self.backed_[rows] = np.where(f >= forecast_bar, now, self.backed_[rows])
            self.seen_[rows] = np.where(np.isfinite(f), now, self.seen_[rows])
            # Backed at a cycle of this run, or never forecast for during it (NaN
            # compares False), or raised already.
            held &= ((self.backed_[rows] >= since) | ~(self.seen_[rows] >= since)
                     | (self.raised_[rows] == since))
        if held.any():
            span = self._span(rows, now) if history is None else np.asarray(history, float)
            held &= span >= float(cfg.sustained_anomaly_min_history) - self.sample_every
        excused = held & (self.excused_[rows] == since)
        return held & ~excused, since, excused

    def _span(self, rows: np.ndarray, now: float) -> np.ndarray:
        """Seconds from each row's oldest reference sample to `now` (0 when it has none)."""
        out = np.zeros(len(rows))
        for b in range(0, len(rows), self.row_block):
            rb = rows[b:b + self.row_block]
            valid = ~np.isnan(self.risk_[rb])
            first = np.where(valid, self.time_[rb], np.uint32(_TIME_MAX)).min(axis=1)
            some = valid.any(axis=1)
            out[b:b + self.row_block] = np.where(some, now - first.astype(np.float64), 0.0)
        return out

    def _drop_excluded(self, now: float) -> None:
        """Blank reference samples inside excluded spans; forget spans older than any sample."""
        oldest = now - float(self.cfg.reference) - self.exclude_recent
        self.excluded_ = [x for x in self.excluded_ if x[2] >= oldest]
        for key, start, end, known in self.excluded_:
            row = self.rows_.get(key)
            if row is None or known > now:
                continue
            with np.errstate(invalid="ignore"):
                hit = (self.time_[row] >= start) & (self.time_[row] <= end)
            hit &= ~np.isnan(self.risk_[row])
            if hit.any():
                self.risk_[row, hit] = np.nan
                self._version += 1

    def _learn(self, rows: np.ndarray, risk: np.ndarray, now: float,
               lead: np.ndarray | None = None) -> None:
        due = (now - self.last_[rows] >= self.sample_every - 1e-6) & np.isfinite(risk)
        if not due.any():
            return
        r = rows[due]
        slot = (np.floor(now / self.sample_every).astype(np.int64)) % self.slots
        self.risk_[r, slot] = risk[due].astype(np.float32)
        if lead is None:
            self.lead_[r, slot] = NO_LEAD
        else:
            k = np.asarray(lead, dtype=np.int64)[due]
            self.lead_[r, slot] = np.where((k >= 0) & (k < NO_LEAD), k, NO_LEAD).astype(np.uint8)
        stamp = int(np.uint32(max(now, 0.0)))
        if stamp <= self._newest:  # not later than every sample held: see `_quantiles`
            self._version += 1
        self._newest = max(self._newest, stamp)
        self.time_[r, slot] = np.uint32(stamp)
        self.last_[r] = now


_TIME_MAX = int(np.iinfo(np.uint32).max)
_Bounds = tuple[np.uint32, np.uint32]  # an inclusive range of sample times


@dataclass(frozen=True)
class _Signature:
    """What a `_quantiles` answer was computed from: the state's version, the reference's
    time bounds, and per row the count and sum of the sample times inside it [2, E]."""

    version: int
    bounds: _Bounds | None
    tally: np.ndarray

    def holds_as(self, now: _Signature) -> bool:
        """Whether the references of `now` hold exactly the samples of this one (`now`'s
        window not earlier than this one's, the version unchanged, counts and sums equal)."""
        forward = self.bounds is None or now.bounds is None or (
            now.bounds[0] >= self.bounds[0] and now.bounds[1] >= self.bounds[1])
        return bool(forward and now.version == self.version
                    and np.array_equal(now.tally, self.tally))


def _window(low: float, high: float) -> _Bounds | None:
    """The sample times t (whole uint32 seconds) with low < t <= high, inclusive (exact: a
    uint32 is exact as a float64, so this is the float comparison). None when there is none."""
    if math.isnan(low) or math.isnan(high) or high < 0 or low >= _TIME_MAX:
        return None
    lo = 0 if low < 0 else math.floor(low) + 1
    hi = _TIME_MAX if high >= _TIME_MAX else math.floor(high)
    return (np.uint32(lo), np.uint32(hi)) if lo <= hi else None


def _time_bounds(keep: Callable[[float], bool], low: float, high: float) -> _Bounds | None:
    """The sample times t (whole uint32 seconds) for which keep(float(t)) holds, inclusive.

    keep is the float comparison a range test replaces (so the bounds are exactly that
    comparison's, its rounding included): it must hold on one run of times, from about `low`
    to about `high` (within a second). None when no time qualifies.
    """
    if math.isnan(low) or math.isnan(high):
        return None
    lo = math.ceil(min(max(low, -1.0), _TIME_MAX + 1.0))
    hi = math.floor(min(max(high, -1.0), _TIME_MAX + 1.0))
    lo, hi = max(lo, 0), min(hi, _TIME_MAX)
    while lo > 0 and keep(float(lo - 1)):
        lo -= 1
    while lo <= hi and not keep(float(lo)):
        lo += 1
    while hi < _TIME_MAX and keep(float(hi + 1)):
        hi += 1
    while hi >= lo and not keep(float(hi)):
        hi -= 1
    return (np.uint32(lo), np.uint32(hi)) if lo <= hi else None


def _inside(times: np.ndarray, bounds: _Bounds | None) -> np.ndarray:
    """times (uint32, any shape) within `_time_bounds`' inclusive range, as a bool mask."""
    if bounds is None:
        return np.zeros(times.shape, dtype=bool)
    return (times >= bounds[0]) & (times <= bounds[1])


def _same_lead(leads: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """[R, slots] whether each sample of `leads` [R, slots] was led by its row's `lead` [R]
    or by an unknown signal (NO_LEAD)."""
    return (leads == np.asarray(lead)[:, None]) | (leads == NO_LEAD)


def _under(bar: float, floor: float = 0.0) -> float:
    """Just under a level's bar, shown under it at two decimals (0.49 for 0.5), and above
    `floor` (the band's own bottom: half way between them where they are closer than 0.02)."""
    return bar - min(0.01, (bar - floor) / 2)


def exported_risk(risk: np.ndarray, threshold: np.ndarray, level: np.ndarray,
                  warning_risk: float, anomaly: np.ndarray | None = None,
                  anomaly_bar: float = 0.998, critical_risk: float = 0.8) -> np.ndarray:
    """The risk an entity exports [E]: the consensus `risk` [E] (0..1, NaN undecided) read
    against what is usual for the entity, and at least the rarity of its topology anomaly
    below the warning bar, so that one scale ranks every entity of a fleet.

    - **Against the entity's usual.** Where the entity's bar (`threshold` + MARGIN, from
      `DecisionStage.decide`) lies above `warning_risk`, the risk is mapped piecewise
      linearly so that the bar lands on `warning_risk`: [0, bar] onto [0, warning_risk],
      [bar, 1] onto [warning_risk, 1]. A risk the entity reaches every day (a noisy host at
      0.7, a model overconfident on its benign patterns) then reads below the warning bar,
      as its level says. Where the bar is at or below `warning_risk`, or no reference
      applies (threshold NaN), the risk is kept (the consensus level already needs
      `warning_risk`).
    - **The anomaly's rarity.** The calibrated `anomaly` score [E] (a tail probability
      under the entity's own history, NaN unknown; None: none this cycle; `gate` passes the
      exported score, this cycle's onset, not the sustained form the warning rule judges)
      reads as `warning_risk * log(1 - score) / log(1 - anomaly_bar)`, capped 0.01 below
      `warning_risk`: at `anomaly_bar` (the sustained-anomaly threshold: the sustained form
      held there for its duration makes a warning) it reaches the warning bar. `gate`
      passes the score only once it is calibrated on `sustained_anomaly_min_history` of the
      entity's history, as the sustained-anomaly rule asks (NaN before). Agents that see no
      failure mechanism leave the consensus risk near 0 on servers whose capacities are
      unknown; their unusual hours still rank above their usual ones.
    - The score's bands are the levels: below `warning_risk` at level 0, from
      `warning_risk` to below `critical_risk` at level 1 (passed, or raised by a sustained
      anomaly), at least `critical_risk` at level 2 (the gated `level` [E]). A consensus
      risk above the bar without a level (no quorum, or no agent that sees a mechanism)
      reads 0.01 under the warning bar; a warning held below critical reads 0.01 under
      `critical_risk`. So `aura_risk_score >= 0.5` and `aura_risk_level >= 1` select the
      same entities. Undecided entities (risk NaN) stay NaN.

    The decision's references learn the consensus risk itself, not this (the map is
    monotone in the risk for a given entity and level; the bands are not, across levels).
    Measured in benchmarks/README.md ("The exported risk"): AUROC of `risk` in the hours
    before incidents against far from them, on fleets AURA never saw and on ASD's real
    servers.
    """
    risk = np.asarray(risk, dtype=np.float64)
    bar = np.asarray(threshold, dtype=np.float64) + MARGIN
    w = float(warning_risk)
    scaled = np.isfinite(bar) & (bar > w)
    safe_bar = np.where(scaled, bar, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = risk * (w / safe_bar)
        high = w + (1.0 - w) * (risk - safe_bar) / np.maximum(1.0 - safe_bar, 1e-12)
    out = np.where(scaled, np.where(risk <= safe_bar, low, np.minimum(high, 1.0)), risk)
    if anomaly is not None and 0.0 < anomaly_bar < 1.0:
        tail = np.clip(1.0 - np.asarray(anomaly, dtype=np.float64), 1e-12, 1.0)
        part = w * np.log(tail) / math.log(1.0 - anomaly_bar)
        part = np.minimum(part, _under(w))
        out = np.where(np.isfinite(part) & np.isfinite(out), np.fmax(out, part), out)
    lvl = np.asarray(level)
    c = max(float(critical_risk), w)
    at_1 = np.fmax(out, w)
    if c > w:
        at_1 = np.minimum(at_1, _under(c, w))
    banded = np.where(lvl >= 2, np.fmax(out, c),
                      np.where(lvl == 1, at_1, np.minimum(out, _under(w))))
    return np.where(np.isfinite(out) & (lvl >= 0), banded, out)


def forecast_within(forecast: Forecast | None, entities: int) -> np.ndarray | None:
    """[E] each entity's probability of a failure within the forecast's largest horizon
    (the highest of its horizons' probabilities: they are cumulative), NaN where it has
    none; None without a forecast. Raises DecisionError when its shape does not match
    `entities`."""
    if forecast is None or not forecast.horizons:
        return None
    p = np.asarray(forecast.probability, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != entities or p.shape[1] == 0:
        raise DecisionError(f"forecast probability {p.shape} for {entities} entities")
    out = np.full(entities, np.nan)
    some = np.isfinite(p).any(axis=1)
    out[some] = np.nanmax(p[some], axis=1)
    return out


def gate(stage: DecisionStage, entities: Sequence[EntityKey], consensus: Consensus,
         now: float, topology: TopologyResult | None = None,
         values: np.ndarray | None = None, warning_risk: float = 0.5,
         critical_risk: float = 0.8, forecast: Forecast | None = None,
         signals: Sequence[SignalConfig] | None = None) -> Consensus:
    """The consensus with its level gated by `stage` (see DecisionStage.decide), given the
    cycle's topology result (its anomaly score and history; None: none this cycle), its
    window `values` [E, S, T] (None: no counter reset is known) and its `forecast` (read
    only where the forecast agent is among the consensus's agents: a sustained anomaly
    needs its backing where it forecasts, at `warning_risk`). The risk it returns is the
    exported one (`exported_risk`, banded by `warning_risk` and `critical_risk`); the
    consensus's own stays in `consensus_risk`.

    A suppressed entity keeps its consensus risk (`consensus_risk`; its exported risk reads
    under the warning bar), votes and contributions (a drill-down still shows what moves)
    but gets level 0, action "none", no time to failure, and an explanation
    naming the threshold it stayed under. An entity raised by a sustained anomaly gets
    level 1, action "investigate", the topology agent as its only supporter, the topology's
    signal contributions and an explanation saying how rare and for how long (and, where its
    agents' risk was lowered as usual, why); one whose sustained anomaly a restart excuses
    says so in its explanation. Sustained anomalies count only where the topology agent is
    enabled (it is among the consensus's agents). An entity with no sample of any signal in
    the window's last NO_DATA_STEPS steps (`exporter.windows.no_recent_samples`) is made
    undecided first: level -1, no risk, action "none", an explanation saying "no data".

    With the analysis' `signals` (their kinds, in the window's order) and the window, an
    entity left at a level whose leading signal (an `errors` or `latency` one) moves with
    another entity's same signal, which rose more, is held at 0 as that entity's symptom
    (`exporter.cascade.symptoms`; `symptom_correlation`, `symptom_rise_ratio`): action
    "none", no time to failure, an explanation starting "symptom of" naming the other
    entity, the signal, the correlation and the rise ratio.
    """
    # No data (no sample of any signal in the window's last NO_DATA_STEPS steps: a host down,
    # a target gone): undecided, never ok on its older samples; its risk and level series
    # leave /metrics as a stopped target's do, and nothing of it enters the references.
    stale = no_recent_samples(values) if values is not None and len(entities) \
        else np.zeros(len(entities), dtype=bool)
    if stale.any():
        texts = list(consensus.explanation)
        for i in np.flatnonzero(stale):
            texts[i] = (f"no data: no sample of any signal in the last {NO_DATA_STEPS} steps "
                        "(scrapes stopped?); no verdict until samples come back")
        consensus = replace(
            consensus, risk=np.where(stale, np.nan, consensus.risk),
            level=np.where(stale, -1, consensus.level),
            action=tuple("none" if x else a for x, a in zip(stale, consensus.action, strict=True)),
            time_to_failure=np.where(stale, np.nan, consensus.time_to_failure),
            explanation=tuple(texts))
    topo = topology if topology is not None and "topology" in consensus.agents else None
    lead = lead_signal(consensus.contribution, len(entities))
    # The window and which of its signals carry a dependency's failure, for the symptom rule.
    window = values if values is not None and signals is not None and np.ndim(values) == 3 \
        and np.shape(values)[1] == len(signals) else None
    d = stage.decide(entities, consensus.risk, consensus.level, now,
                     None if topo is None else topo.sustained(),
                     None if topo is None else topo.history_seconds,
                     None if topo is None else values,
                     None if topo is None or "forecast" not in consensus.agents
                     else forecast_within(forecast, len(entities)), warning_risk, lead,
                     window, None if window is None or signals is None
                     else propagating_signals([x.kind for x in signals]))
    held = np.zeros(len(entities), dtype=bool) if d.symptoms is None \
        else d.symptoms.source >= 0
    # The anomaly score reads as risk only once it is calibrated on the history the
    # sustained-anomaly rule asks (a few hours of it cannot tell 1 in 500 from 1 in 50).
    # Producers always give history_seconds (exporter/tda); without it nothing is known of
    # the calibration, and the term is left out (the warning rule falls back to the risk
    # reference's span instead: it has a level to guard, this has only a ranking).
    anomaly = None
    if topo is not None and topo.history_seconds is not None:
        enough = np.asarray(topo.history_seconds, dtype=np.float64) >= (
            float(stage.cfg.sustained_anomaly_min_history) - stage.sample_every)
        anomaly = np.where(enough, np.asarray(topo.anomaly_score, dtype=np.float64), np.nan)
    exported = exported_risk(consensus.risk, d.threshold, d.level, warning_risk, anomaly,
                             float(stage.cfg.sustained_anomaly_threshold), critical_risk)
    wide = d.fleet_wide if d.fleet_wide is not None else np.zeros(len(d.level), dtype=bool)
    if not d.suppressed.any() and not d.escalated.any() and not d.excused.any() \
            and not wide.any() and not held.any():
        return replace(consensus, risk=exported, threshold=d.threshold,
                       consensus_risk=consensus.risk, fleet_wide_entities=d.elevated_now,
                       fleet_wide_needed=d.fleet_wide_needed)
    actions = list(consensus.action)
    texts = list(consensus.explanation)
    ref = format_duration(stage.cfg.reference)
    for i in np.flatnonzero(d.suppressed):
        actions[i] = "none"
        # The span its own reference holds: a day-old entity's "last 3d" is its one day.
        own = ref if d.own_span is None or d.own_span[i] >= float(stage.cfg.reference) \
            - stage.sample_every else humanize_seconds(max(float(d.own_span[i]),
                                                           stage.sample_every))
        led = " with the same signal leading" if lead[i] >= 0 else ""
        why = {
            "own": f"the highest it reached in the last {own}{led}",
            "fleet": f"what the fleet's entities usually reach (last {ref})",
            "cold": (f"the cold-start bar while it has less than "
                     f"{format_duration(stage.cfg.min_reference)} of history"),
            "daily": (f"it reached {d.phase_high[i]:.2f} at this time of day on an earlier day"
                      f"{' (the same signal leading)' if led else ''} with nothing recorded"),
        }[d.bound[i]]
        texts[i] = (f"usual for this entity: consensus risk {consensus.risk[i]:.2f} needs more "
                    f"than {d.threshold[i] + MARGIN:.2f}, {why} ({texts[i]})")
    for i in np.flatnonzero(d.excused):
        texts[i] = (f"{texts[i]}; its sustained topology anomaly "
                    f"({format_duration(now - d.anomaly_since[i])}) {RESTART_EXCUSE} "
                    "(a signal reset like a counter in its window)")
    if topo is not None and d.escalated.any():
        consensus = _escalate(stage, consensus, topo, d, now, actions, texts)
    for i in np.flatnonzero(wide):
        actions[i] = "none"
        texts[i] = (f"{FLEET_WIDE}: {d.elevated_now} of {max(len(d.level), d.elevated_now)} "
                    "entities reached a "
                    f"level within {format_duration(stage.cfg.fleet_wide_window)}, more than "
                    f"independent failures explain ({d.fleet_wide_needed} or more): a shared "
                    "cause (a traffic surge, a deploy wave, a dependency, scrape trouble), not "
                    f"this entity's own failure ({texts[i]})")
    for i in np.flatnonzero(held):
        assert d.symptoms is not None
        k = int(d.symptoms.source[i])
        corr, ratio = d.symptoms.correlation, d.symptoms.rise_ratio
        actions[i] = "none"
        name = signals[int(lead[i])].name if signals is not None else "leading signal"
        texts[i] = (f"{SYMPTOM} {'/'.join(str(v) for v in entities[k])}: its {name} moves "
                    f"with {'/'.join(str(v) for v in entities[k])}'s step by step (r = "
                    f"{corr[i]:.2f} over the window), which rose {ratio[i]:.1f}x as much: "
                    f"that entity's failure seen from a caller, not this one's own "
                    f"({texts[i]})")
    # The entity they follow says so: its alert is the one page for the whole group.
    followers: dict[int, list[int]] = {}
    for i in np.flatnonzero(held):
        assert d.symptoms is not None
        followers.setdefault(int(d.symptoms.source[i]), []).append(int(i))
    for k, rows in followers.items():
        if d.level[k] >= 1:
            names = ", ".join("/".join(str(v) for v in entities[i]) for i in rows[:FOLLOWERS_NAMED])
            more = f" and {len(rows) - FOLLOWERS_NAMED} more" if len(rows) > FOLLOWERS_NAMED else ""
            texts[k] = (f"{texts[k]}; {len(rows)} "
                        f"{'entity follows' if len(rows) == 1 else 'entities follow'} it, held "
                        f"as its symptoms: {names}{more}")
    return replace(consensus, risk=exported, level=d.level, action=tuple(actions),
                   time_to_failure=np.where(d.suppressed | wide | held, np.nan,
                                            consensus.time_to_failure),
                   explanation=tuple(texts), threshold=d.threshold,
                   consensus_risk=consensus.risk, fleet_wide_entities=d.elevated_now,
                   fleet_wide_needed=d.fleet_wide_needed)


def lead_signal(contribution: np.ndarray | None, entities: int) -> np.ndarray:
    """[E] the index of each entity's largest signal contribution (-1 where none is known)."""
    c = np.asarray(contribution, dtype=np.float64) if contribution is not None else None
    if c is None or c.ndim != 2 or c.shape[0] != entities or c.shape[1] == 0:
        return np.full(entities, -1, dtype=np.int64)
    known = (np.nan_to_num(c, nan=0.0) > 0).any(axis=1)
    return np.where(known, np.argmax(np.nan_to_num(c, nan=-1.0), axis=1), -1)


def _escalate(stage: DecisionStage, consensus: Consensus, topology: TopologyResult,
              d: Decision, now: float, actions: list[str], texts: list[str]) -> Consensus:
    """The escalated entities' supporters, contributions, actions and texts (`gate`)."""
    rows = np.flatnonzero(d.escalated)
    agreeing = np.array(consensus.agreeing, dtype=bool, copy=True)
    if agreeing.ndim == 2:
        # The others agreed with level 0 (quiet); topology alone supports the warning.
        agreeing[rows] = False
        agreeing[rows, consensus.agents.index("topology")] = True
    contribution = np.array(consensus.contribution, dtype=np.float64, copy=True)
    topo = np.asarray(topology.signal_contribution, dtype=np.float64)
    if contribution.ndim == 2 and topo.shape == contribution.shape:
        known = rows[np.isfinite(topo[rows]).any(axis=1)]
        contribution[known] = topo[known]
    threshold = float(stage.cfg.sustained_anomaly_threshold)
    score = np.asarray(topology.sustained(), dtype=np.float64)
    for i in rows:
        actions[i] = "investigate"
        # A level lowered as usual says so: its text already starts "usual for this entity".
        tail = texts[i] if d.suppressed[i] else \
            f"no agent sees a failure mechanism ({texts[i]})"
        texts[i] = (f"sustained anomaly: its sustained topology anomaly score (30-min average "
                    f"and drift) has stayed at or above "
                    f"{threshold:g} (rarer than 1 in {round(1 / (1 - threshold)):,} of its own "
                    f"windows) for {format_duration(now - d.anomaly_since[i])}, now "
                    f"{score[i]:.4f}; {tail}")
    return replace(consensus, agreeing=agreeing, contribution=contribution)
