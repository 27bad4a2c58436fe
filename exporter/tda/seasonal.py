"""Seasonal level deviation per entity, tail probabilities, and their fusion with topology.

Why (issue 14, measured on ASD, benchmarks/README.md): the topology score compares the
*shape* of the window with the entity's own same-time-of-day history; a level shift that keeps
the shape (a service settling 20 % higher than it does at this hour) scores low there, while
a plain seasonal z-score sees it. Both are turned into tail probabilities under the entity's
own recent history and combined, so persistent homology stays one of two independent views.

- Level: each signal's newest coarse point (the mean of the window's last
  window/score_points, 10 min at the defaults), in raw units.
- Reference (`SeasonalLevels`): per signal, the hourly mean level of each of the last
  `DAYS` (7) days, kept in a ring of SLOTS = DAYS x 24 + 2 hourly slots (running mean, M2 and
  count per slot and signal; memory per entity 8 + 9 x S bytes per slot: 170 slots x 8
  signals = 13.6 KB, 136 MB at 10 000 entities). The deviation at time t is, per signal,
  |level - median| / scale over the slots of the same hour of day +-1 h on previous days,
  with scale = max(1.4826 x the MAD of those of the newest SUSTAINED_DAYS (3) days (the
  sustained form's level: at most 9 hourly means, its floor from those days' means too) or
  the standard deviation of every level counted in those slots of all DAYS days
  (`_pooled_std`, about their median: the exported score's level, at most 21 hourly means),
  SPREAD_FLOOR x the robust spread (IQR / 1.349) of the stored hourly means of the signal),
  i.e. a seasonal z-score whose floor is a tenth of the signal's own daily range
  (no absolute units); the entity's deviation is the max over signals (the sustained form's)
  or, on the pooled scale (the exported score's), their joint z (`joint_z`, the z of the mean
  Cauchy log-likelihood: several signals moderately off at once add up). NaN until
  MIN_REFERENCES hourly means of the same hour exist. The reference is computed once per
  hour and entity (its rows are at least 23 h old). INTERPOLATE and WITHIN are measured
  variants, off (worse on ASD, benchmarks/README.md).
- Tail probability (`survival`): P(X >= x) under an entity's own recent values: the
  mid-rank empirical complement below their TAIL_QUANTILE, above it an exponential tail
  fitted to the exceedances (peaks over threshold with a generalised Pareto of shape 0, as
  in SPOT: Siffer et al., "Anomaly detection in streams with extreme value theory", KDD
  2017), so values beyond the history's maximum keep being ranked instead of tying at 1.
- Fusion (`fisher`): Fisher's method, -2 (ln p_topology + ln p_level) mapped back to two
  degrees of freedom (one scale whether or not the level's p-value exists yet), averaged over the
  last SMOOTH seconds (a short moving average against the long-run distribution, as
  Numenta's anomaly likelihood does), then re-calibrated by `survival` against the entity's
  own history of the same statistic (exporter/tda/baseline.py `BaselineStore.score`).
- Drift (`drift`, since the fourth issue-14 session): a one-sided CUSUM of the same Fisher
  statistic (Page, "Continuous inspection schemes", Biometrika 1954), S = max(0, S' + x -
  DRIFT_K), one step per own value (10 min at the defaults): evidence that is only moderate
  in each window but lasts hours accumulates instead of being averaged away over 30 min.
  The reference value DRIFT_K = 3 is the null mean of chi2 with 2 degrees of freedom (2)
  plus half its standard deviation (2), Page's rule for detecting a shift of one standard
  deviation; no fitted constant. Re-calibrated like the average on the entity's own history
  of S. The sustained form, which the decisions read, combines the calibrated 30-min average
  and the calibrated drift by Tippett's minimum p with Sidak's correction (`tippett`). The
  exported score is the onset (since the seventh issue-14 session): this cycle's Fisher
  statistic, with the level on the pooled scale, read as the p-value it is
  (exporter/tda/baseline.py EXPORTED). Both stay tail probabilities.
"""

from __future__ import annotations

import math

import numpy as np

from exporter.numeric import IQR_TO_SIGMA, MAD_TO_SIGMA, nanmedian_last

DAYS = 7
HOUR = 3600.0
SLOTS = DAYS * 24 + 2  # + the two slots the oldest day's interpolation needs
NEAR = (-1, 0, 1)
# The sustained form's (MAD) reference reads the newest SUSTAINED_DAYS days of the ring (as
# the three-day ring gave it, identical on an uninterrupted series); the exported score's
# (pooled) one all DAYS (issue 14, eleventh session, ASD at the live cadence: whole servers
# AUROC 0.679 -> 0.696, NAB-style 33.7 -> 39.4, info fires 0.59 -> 0.43 per entity-day; the
# week for both forms cost the failure alerts, which read the sustained form, 28 -> 25 on ASD
# and 10 -> 9 incidents detected: benchmarks/README.md "A week of same-hour references for
# the exported score").
SUSTAINED_DAYS = 3
DAY = 86400.0
# Reference: each earlier day's level interpolated at the same time of day (else the hourly
# means of the same hour +-1 h: a steep daily slope then widens the reference).
INTERPOLATE = False
# Count the variance of single levels within the reference hours in the scale.
WITHIN = False
# Two scales per reference (issue 14, seventh session). The pooled one, the standard deviation
# of every level counted in the reference hours (the slots' Welford statistics pooled:
# `_pooled_std`), is the level of the exported score (`deviation(pooled=True)`): the MAD of
# 3-9 hourly means is a small and noisy scale, and the max over many signals of z-scores on
# it is set by whichever signal's scale came out smallest (ASD at the live cadence, whole
# servers of 19 signals, exported score read as the onset alone: NAB-style 20.3 -> 29.1,
# AUROC 0.623 -> 0.642; benchmarks/README.md "The exported score is this cycle's"). The MAD
# one is the level of the sustained form, which the failure warnings read: with the pooled
# scale there the seventeen independent fleets got 7 more false failure alerts (precision
# 0.876 -> 0.859, measured in the sixth session).
MIN_REFERENCES = 3
SPREAD_FLOOR = 0.1
TAIL_QUANTILE = 0.9
MIN_TAIL = 3
TINY = 1e-300
# Deviations are clipped here (a signal flat for days has a scale near 0; the calibration
# ranks, the magnitude beyond this adds nothing).
MAX_DEVIATION = 1e6
# How the pooled-scale deviations (the exported score's level) combine over signals: "joint",
# the z whose Cauchy log-likelihood ln(1 + z^2) is the mean over the signals (`joint_z`;
# several signals moderately off add up, one far off still counts, and one signal's is its
# own |z|), or "max" (the sustained form's, which the failure warnings read, always).
POOLED_COMBINE = "joint"
# Fisher's statistic mapped back to 2 degrees of freedom whatever the number of p-values
# (off: -2 sum ln p, whose scale doubles the day the level's p-value joins; measured variant).
FISHER_DOF = True
# CUSUM reference value of the drift: chi2_2's mean 2 + half its standard deviation 2.
DRIFT_K = 3.0
# Fewer entities than this are counted or scored one by one (`add_levels`, `deviations`):
# an array step's fixed cost (~20 us) is more than a few entities' own calls (measured: a
# one-entity replay of 14 days spent 0.1 s more in the array steps).
BATCH_MIN = 8
# The largest count a slot's uint8 counter holds (np.iinfo(np.uint8).max, looked up per call
# was a tenth of `add`).
_COUNT_MAX = 255


class SeasonalLevels:
    """One entity's hourly level statistics over the last DAYS days (a ring of SLOTS slots).

    hours [SLOTS] int64: the absolute hour (Unix seconds // 3600) each slot holds (-1: none);
    means, m2 [SLOTS, S] float32 (Welford's running mean and sum of squared deviations of
    the levels counted in the slot), counts [SLOTS, S] uint8: per slot and signal.
    """

    __slots__ = ("hours", "means", "m2", "counts", "_ref", "_ref_hour")

    def __init__(self, signals: int):
        self.hours = np.full(SLOTS, -1, dtype=np.int64)
        self.means = np.zeros((SLOTS, signals), dtype=np.float32)
        self.m2 = np.zeros((SLOTS, signals), dtype=np.float32)
        self.counts = np.zeros((SLOTS, signals), dtype=np.uint8)
        # `reference`'s four arrays and the hour they were computed for: it
        # reads only earlier days' slots, fixed within the hour (not saved: recomputed).
        self._ref: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._ref_hour = -1

    @classmethod
    def restored(cls, hours: np.ndarray, means: np.ndarray, m2: np.ndarray,
                 counts: np.ndarray) -> SeasonalLevels:
        """A ring from saved slots (hours [R], means and m2 [R, S], counts [R, S]) of any
        length R: each slot goes to its hour's row of this version's ring, the newest hour
        where two share one (a shorter ring saved by an earlier version loses nothing)."""
        out = cls(means.shape[1])
        if len(hours) == SLOTS:
            out.hours = np.asarray(hours, dtype=np.int64).copy()
            out.means = np.asarray(means, dtype=np.float32).copy()
            out.m2 = np.asarray(m2, dtype=np.float32).copy()
            out.counts = np.asarray(counts, dtype=np.uint8).copy()
            return out
        for j in np.argsort(hours, kind="stable").tolist():
            hour = int(hours[j])
            if hour < 0:
                continue
            row = hour % SLOTS
            out.hours[row] = hour
            out.means[row], out.m2[row], out.counts[row] = means[j], m2[j], counts[j]
        return out

    def deviation(self, level: np.ndarray, now: float, pooled: bool = False) -> float:
        """The robust same-time-of-day z-scores of level [S] (raw units) at `now` (Unix
        seconds) combined over signals: their max, or with `pooled` their `joint_z` (where
        POOLED_COMBINE is "joint"); NaN without MIN_REFERENCES earlier days' levels of any
        signal.

        Reference per signal: each earlier day's level at now's time of day (INTERPOLATE)
        or the hourly means of the same hour +-1 h; centre: their median; scale: their MAD
        x 1.4826 (with WITHIN the median variance of single levels within those hours added
        in quadrature), or with `pooled` the standard deviation of every level counted in
        those hours (`_pooled_std`; the MAD's with INTERPOLATE), floored at SPREAD_FLOOR x
        the robust spread of all the signal's hourly means.
        """
        centre, mad, centre_p, pool = self.reference(now)
        if pooled and POOLED_COMBINE == "joint":
            return float(joint_z((np.abs(level - centre_p) / pool)[None])[0])
        # NaN where no reference or no level; fmax skips NaN (NaN only if all are).
        dev = float(np.fmax.reduce(np.abs(level - centre_p) / pool) if pooled
                    else np.fmax.reduce(np.abs(level - centre) / mad))
        return min(dev, MAX_DEVIATION) if dev == dev else dev

    def reference(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(centre [S], MAD scale [S], pooled centre [S], pooled scale [S]) that `deviation`
        compares a level at `now` with (NaN where a signal has no reference yet); computed
        once per hour (rows >= 23 h old)."""
        hour = int(now // HOUR)
        if INTERPOLATE:
            return self._reference(hour, now)
        if self._ref_hour != hour or self._ref is None:
            self._ref, self._ref_hour = self._reference(hour, now), hour
        return self._ref

    def _reference(self, hour: int, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray]:
        """(centre [S], MAD scale [S], pooled centre [S], pooled scale [S]) of the reference
        at `now` (NaN where a signal has fewer than MIN_REFERENCES values); see `deviation`.
        The MAD pair reads the newest SUSTAINED_DAYS days of the ring, the pooled pair all
        DAYS."""
        nan = np.full(self.means.shape[1], np.nan)
        # Hours back of each reference slot (DAYS x NEAR) and which the sustained form reads
        # (built here, not at import: the measured variants patch DAYS and SLOTS).
        days = np.repeat(np.arange(1, DAYS + 1), len(NEAR))
        want = hour - (24 * days - np.tile(np.asarray(NEAR), DAYS))
        newest = days <= SUSTAINED_DAYS
        rows = want % SLOTS
        ok = self.hours[rows] == want
        filled = np.where(self.counts > 0, self.means, np.nan)
        # The floors read the hourly means of the hours before this one: the sustained form's
        # the SUSTAINED_DAYS x 24 + 2 of them (what a ring of its own held at the hour's first
        # cycle on an uninterrupted series; after a gap or a restart mid-hour that ring held
        # whatever its slots still did), the pooled pair's the whole ring's.
        back = hour - self.hours
        before = filled[(back >= 1) & (back <= SLOTS)]
        recent = filled[(back >= 1) & (back <= SUSTAINED_DAYS * 24 + 2)]
        if INTERPOLATE:
            ref = self._interpolated(filled, now)  # [R, S]
        else:
            ref = filled[rows[ok & newest]]
        centre, scale = nan.copy(), nan.copy()
        enough = np.isfinite(ref).sum(axis=0) >= MIN_REFERENCES
        if enough.any():
            q25, q75 = _nanquantiles(recent[:, enough])
            ref = ref[:, enough]
            med = nanmedian_last(ref.T)
            spread = MAD_TO_SIGMA * nanmedian_last(np.abs(ref - med).T)
            if WITHIN:
                sub = rows[ok & newest]
                n = self.counts[sub][:, enough].astype(np.float32)
                var = np.where(n > 1, self.m2[sub][:, enough] / np.maximum(n - 1, 1), np.nan)
                has = np.isfinite(var).any(axis=0)
                within = np.zeros(len(med))
                within[has] = nanmedian_last(var[:, has].T)
                spread = np.sqrt(spread**2 + within)
            centre[enough] = med
            floor = SPREAD_FLOOR * (q75 - q25) / IQR_TO_SIGMA
            scale[enough] = np.fmax(np.fmax(spread, floor), 1e-12)
        if INTERPOLATE:  # no slot counts behind its reference
            return centre, scale, centre, scale
        # The pooled pair: every day of the ring.
        rows = rows[ok]
        ref = filled[rows]
        centre_p, pooled = nan.copy(), nan.copy()
        enough = np.isfinite(ref).sum(axis=0) >= MIN_REFERENCES
        if enough.any():
            q25, q75 = _nanquantiles(before[:, enough])
            centre_p[enough] = nanmedian_last(ref[:, enough].T)
            floor = SPREAD_FLOOR * (q75 - q25) / IQR_TO_SIGMA
            pooled[enough] = np.fmax(np.fmax(_pooled_std(
                self.counts[rows][:, enough], self.means[rows][:, enough],
                self.m2[rows][:, enough]), floor), 1e-12)
        return centre, scale, centre_p, pooled

    def _interpolated(self, means: np.ndarray, now: float) -> np.ndarray:
        """[R, S] each earlier day's level at now's time of day: linear between the centres
        of the two hourly slots around it (a day without both is left out)."""
        out = []
        for k in range(1, SUSTAINED_DAYS + 1):
            x = (now - k * DAY) / HOUR - 0.5
            h = int(np.floor(x))
            w = x - h
            a, b = h % SLOTS, (h + 1) % SLOTS
            if self.hours[a] == h and self.hours[b] == h + 1:
                out.append((1 - w) * means[a] + w * means[b])
        return np.array(out).reshape(-1, means.shape[1])

    def add(self, level: np.ndarray, now: float) -> None:
        """Count level [S] (NaN: not observed) in the slot of `now`'s hour."""
        hour = int(now // HOUR)
        row = hour % SLOTS
        if self.hours[row] != hour:
            if self.hours[row] > hour:
                return  # older than what the slot holds (out of order): dropped
            self.hours[row] = hour
            self.means[row] = 0.0
            self.m2[row] = 0.0
            self.counts[row] = 0
        counts, means, m2 = self.counts[row], self.means[row], self.m2[row]  # views
        ok = np.isfinite(level) & (counts < _COUNT_MAX)
        if ok.all():  # the usual case: whole rows, no masked copies (same arithmetic)
            x = level.astype(np.float32)
            counts += 1
            delta = x - means
            means += delta / counts
            m2 += delta * (x - means)
            return
        x = level[ok].astype(np.float32)
        counts[ok] += 1
        delta = x - means[ok]
        means[ok] += delta / counts[ok]
        m2[ok] += delta * (x - means[ok])


def deviations(levels: list[SeasonalLevels], values: np.ndarray,
               now: float) -> tuple[np.ndarray, np.ndarray]:
    """([G], [G]) `levels[g].deviation(values[g], now)` on the MAD and on the pooled scale
    (`pooled=True`) for each g (values [G, S]): the same values, in one array step over a
    cycle's entities and one pass over their references (row-wise; fmax picks one of its
    inputs)."""
    if len(levels) < BATCH_MIN:
        pairs = [(lv.deviation(v, now), lv.deviation(v, now, True))
                 for lv, v in zip(levels, values, strict=True)]
        return (np.array([m for m, _ in pairs], dtype=np.float64),
                np.array([p for _, p in pairs], dtype=np.float64))
    refs = [lv.reference(now) for lv in levels]
    out = []
    for c, k in ((0, 1), (2, 3)):  # the MAD pair, the pooled pair
        z = np.abs(values - np.stack([r[c] for r in refs])) / np.stack([r[k] for r in refs])
        if k == 3 and POOLED_COMBINE == "joint":
            out.append(joint_z(z))
            continue
        dev: np.ndarray = np.fmax.reduce(z, axis=1)
        np.minimum(dev, MAX_DEVIATION, out=dev)  # NaN (no reference) stays NaN
        out.append(dev)
    return out[0], out[1]


def joint_z(z: np.ndarray) -> np.ndarray:
    """[G] one deviation per row of absolute z-scores z [G, S] (NaN: no reference or no
    level, left out): the z whose Cauchy log-likelihood equals the mean of the signals',
    sqrt(exp(mean ln(1 + z^2)) - 1), each z clipped at MAX_DEVIATION; NaN where a row has none.

    A row of one z gives that z, and a row of equal ones that z too; each further signal off
    raises it, so several signals moderately off at once (what ASD's labelled incidents
    mostly are) outrank one signal as far off, which the max ranks the other way round. The
    price: one signal far off among many quiet ones is diluted (a mean, not the worst), so
    the sustained form, which the failure warnings read in the 1-in-500 tail, keeps the max.
    Measured on ASD's whole servers against the max: benchmarks/README.md, "The exported
    score's level: signals combined jointly". The form is the Cauchy (Lorentzian) negative
    log-likelihood used as a robust loss (Black & Rangarajan, "On the unification of line
    processes, outlier rejection, and robust statistics", IJCV 1996).
    """
    z = np.minimum(np.asarray(z, dtype=np.float64), MAX_DEVIATION)
    finite = np.isfinite(z)
    n = finite.sum(axis=1)
    total = np.log1p(np.square(np.where(finite, z, 0.0))).sum(axis=1)  # 0 where not finite
    out = np.sqrt(np.expm1(total / np.maximum(n, 1)))
    one = n == 1  # exactly its own z (no rounding through the logarithm)
    if one.any():
        out[one] = np.fmax.reduce(z[one], axis=1)
    out[n == 0] = np.nan
    return out


def add_levels(levels: list[SeasonalLevels], level: list[np.ndarray], now: float) -> None:
    """`levels[g].add(level[g], now)` for each g (level: G arrays [S]): the same arithmetic, the
    usual case (the slot already holds now's hour, every value finite, no count at its
    maximum) as one array step over all of them (each entity's own `add` was ~8 us, most
    of it per-call overhead; all of a cycle's entities share `now`, so one slot row)."""
    if len(levels) < BATCH_MIN:
        for lv, v in zip(levels, level, strict=True):
            lv.add(v, now)
        return
    values = np.stack(level)  # [G, S]
    hour = int(now // HOUR)
    row = hour % SLOTS
    finite = np.isfinite(values).all(axis=1)
    batch: list[int] = []
    for g, lv in enumerate(levels):
        if lv.hours[row] == hour and finite[g]:
            batch.append(g)
        else:  # a new hour, an out-of-order level or a missing value
            lv.add(values[g], now)
    if batch:
        counts = np.stack([levels[g].counts[row] for g in batch])
        full = (counts == _COUNT_MAX).any(axis=1)
        if full.any():  # a count at its maximum: that entity's own add
            for g in np.asarray(batch)[full].tolist():
                levels[g].add(values[g], now)
            batch, counts = np.asarray(batch)[~full].tolist(), counts[~full]
    if not batch:
        return
    group = [levels[g] for g in batch]
    means = np.stack([lv.means[row] for lv in group])
    m2 = np.stack([lv.m2[row] for lv in group])
    x = values[batch].astype(np.float32)
    counts += 1
    delta = x - means
    means += delta / counts
    m2 += delta * (x - means)
    for g, lv in enumerate(group):
        lv.counts[row], lv.means[row], lv.m2[row] = counts[g], means[g], m2[g]


def _pooled_std(counts: np.ndarray, means: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """[S] standard deviation of every level counted in the slots given (counts, means, m2
    [R, S]: each slot's count, Welford mean and sum of squared deviations), about their
    common mean: (sum m2 + sum n (mean - grand mean)^2) / (N - 1), the law of total variance
    (Chan, Golub & LeVeque 1979); NaN with fewer than two levels."""
    n = counts.astype(np.float64)
    total = n.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        grand = (n * means).sum(axis=0) / total
        ss = m2.astype(np.float64).sum(axis=0) + (n * (means - grand) ** 2).sum(axis=0)
        var = ss / (total - 1.0)
    return np.sqrt(np.where(total > 1, np.fmax(var, 0.0), np.nan))


def _nanquantiles(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """25th and 75th percentiles (nearest rank below) over axis 0 of a [R, S] with NaN.

    The same values as np.nanquantile(a, [0.25, 0.75], axis=0, method="lower") (tested), ~10x
    faster ([74, 8]: 20 vs 210 us; it runs twice per entity and hour, on up to [74, S] and
    [170, S]). Kept over
    exporter.numeric.nan_percentile (linear interpolation; issue 17): measured, ASD multi AUROC
    0.720 -> 0.710, uni and fleetgen-202 unchanged (benchmarks/README.md, issue 14 fourth
    session)."""
    s = np.sort(a, axis=0)
    n = np.maximum(np.isfinite(a).sum(axis=0), 1)
    cols = np.arange(a.shape[1])
    return s[(n - 1) // 4, cols], s[(3 * (n - 1)) // 4, cols]


def tail_fit(hist: np.ndarray) -> tuple[float, float, float, int]:
    """(u, beta, share, n) of the finite values of hist [n']: n of them, their TAIL_QUANTILE
    (nearest rank below) u, the mean excess over it and the share of values above it; beta =
    0 without a tail (fewer than MIN_TAIL exceedances, or TAIL_QUANTILE >= 1)."""
    hist = hist[np.isfinite(hist)]
    n = len(hist)
    if TAIL_QUANTILE >= 1.0 or n < MIN_TAIL / (1.0 - TAIL_QUANTILE):
        return float("inf"), 0.0, 0.0, n
    k = int(TAIL_QUANTILE * (n - 1))
    u = float(np.partition(hist, k)[k])
    exc = hist[hist > u] - u
    if len(exc) < MIN_TAIL:
        return u, 0.0, 0.0, n
    return u, float(exc.mean()), len(exc) / n, n


def survival(x: float, hist: np.ndarray,
             fit: tuple[float, float, float, int] | None = None) -> float:
    """P(X >= x) for x under the finite values of hist [n'] (at least one; 0 < p <= 1): the
    mid-rank empirical complement up to their TAIL_QUANTILE, above it an exponential tail
    fitted to the exceedances (peaks over threshold, GPD shape 0). NaN for NaN x. fit:
    `tail_fit(hist)` when already known (it changes only when hist does)."""
    if not math.isfinite(x):
        return float("nan")
    u, beta, share, n = tail_fit(hist) if fit is None else fit
    if x > u and beta > 0:
        # Floored: far beyond the history exp underflows, and log(0) has no Fisher term.
        return max(share * math.exp(-(x - u) / beta), TINY)
    below = float(np.count_nonzero(hist < x)) + 0.5 * float(np.count_nonzero(hist == x))
    return max((n - below) / n, 0.5 / n)


def fisher(*p: float) -> float:
    """Fisher's combined statistic of the finite p-values given, on one scale whatever their
    number k: -2 ln P(chi2 with 2k degrees of freedom >= -2 sum(ln p)) (0 if none; for k = 1
    it is -2 ln p itself). Under the null (independent uniform p) it is chi2 with 2 degrees
    of freedom for every k, so a history that mixes one- and two-term values (the level's
    reference arrives a day after the topology's) stays one distribution (Fisher 1932; the
    closed form of the chi2 survival with even degrees of freedom: e^(-x/2) sum_{j<k}
    (x/2)^j / j!, as scipy.stats.chi2.sf gives it, ~20x faster per call)."""
    if not FISHER_DOF:
        return -2.0 * sum(math.log(v) for v in p if math.isfinite(v))
    logs = [math.log(v) for v in p if math.isfinite(v)]
    half = -sum(logs)  # x / 2
    # ln P(chi2_2k >= x) = -x/2 + ln sum_{j<k} (x/2)^j / j!
    tail = sum(math.exp(j * math.log(half) - math.lgamma(j + 1)) if half > 0 else float(j == 0)
               for j in range(len(logs)))
    return 2.0 * (half - math.log(tail)) if logs else 0.0


def drift(previous: float, statistic: float) -> float:
    """One step of the one-sided CUSUM max(0, previous + statistic - DRIFT_K) of Fisher
    statistics (chi2 with 2 degrees of freedom under the null: mean 2, standard deviation 2);
    previous: the last value (0 to start; NaN counts as 0); NaN statistic: NaN (Page 1954)."""
    if not math.isfinite(statistic):
        return float("nan")
    start = previous if math.isfinite(previous) else 0.0
    return max(0.0, start + statistic - DRIFT_K)


def tippett(*scores: float) -> float:
    """Combined 0..1 score of calibrated scores (each 1 - p): 1 - P(min of k independent
    uniform p <= the smallest p) = (1 - min p)^k = max(scores)^k (Tippett's method; Sidak's
    correction of the minimum p). NaN entries are left out; NaN if none."""
    ok = [v for v in scores if math.isfinite(v)]
    return max(ok) ** len(ok) if ok else float("nan")
