"""`aura train`: fit the failure model on labelled history replayed through the pipeline's features.

    aura train --corpus=simulator --output=models/default --seed=1
    aura train --config.file=aura.yml --input=data.csv --incidents=incidents.csv \
        --output=models/mine --base=models/default

Windows are cut every `--stride` steps exactly as the live pipeline would hold them
(`exporter.lnn.dataset`), split by entity (an entity is in exactly one of train / validation /
test; simulated fleets are split whole, so their entities' scenario families are never shared
across splits), trained with early stopping on the validation loss, calibrated on the
validation split (per-horizon temperature and bias) and scored on the test split. The card
(`model.yaml`) records data, seeds, held-out metrics and the sha256 of `model.pt`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import AnalysisConfig, Config, Duration, format_duration
from exporter.lnn.dataset import History, Samples, build_samples, incidents_to_arrays
from exporter.util import parse_time

log = logging.getLogger(__name__)

MODEL_HORIZONS = (900.0, 1800.0, 3600.0, 7200.0, 14400.0)
ALERT_THRESHOLD = 0.5
LOFO_FAMILIES = ("memory_leak", "disk_fill")
MODEL_VERSION = "0.2.0"


class TrainError(Exception):
    """Training cannot proceed (no data, no incidents, bad arguments)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config.file", dest="config_file", help="AURA configuration file")
    parser.add_argument("--analysis", help="analysis to train on (default: the first)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="history CSV (format: README, \"Backtest on your own history\")")
    src.add_argument("--start", help="history start (RFC 3339 or Unix seconds); needs --end")
    src.add_argument("--corpus", choices=["simulator"],
                     help="generate a varied labelled corpus with the simulator")
    parser.add_argument("--end", help="history end (with --start)")
    parser.add_argument("--incidents", help="incidents CSV: start,end,<entity labels>[,kind]")
    parser.add_argument("--output", required=True, help="model directory to write")
    parser.add_argument("--base", help="model directory to fine-tune from")
    parser.add_argument("--name", help="model name (default: the output directory's name)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-minutes", dest="max_minutes", type=float, default=12.0,
                        help="wall-clock budget for all training runs together")
    parser.add_argument("--stride", type=int, default=10, help="steps between replayed cycles")
    parser.add_argument("--units", type=int, default=32, help="CfC units (AutoNCP wiring)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fleets", type=int, default=60,
                        help="simulated fleets in the corpus (--corpus=simulator)")
    parser.add_argument("--domain", choices=["randomised", "fixed"], default="randomised",
                        help="--corpus=simulator: randomise step, units, noise, seasonality, "
                        "signal roles and benign families per fleet (default), or the fixed "
                        "1 m demo fleets of models up to 0.1")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--lofo", default=",".join(LOFO_FAMILIES),
                        help="families for leave-one-family-out scores ('' to skip)")


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    net: Any
    epochs: int
    best_val: float
    seconds: float


_THREADS = 1


def _seed_all(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    # Measured: on a loaded 2-core machine 2 intra-op threads made a training step 10-30x
    # slower than 1 (OpenMP workers spin waiting for each other); --threads raises it.
    torch.set_num_threads(_THREADS)
    torch.use_deterministic_algorithms(True)


def _tensors(s: Samples, hmax: float) -> tuple[Any, ...]:
    import torch

    ttf = np.where(np.isfinite(s.ttf), np.log(np.clip(s.ttf, 60.0, hmax) / hmax), np.nan)
    return (torch.from_numpy(s.x), torch.from_numpy(s.y), torch.from_numpy(s.weight.astype(
        np.float32)), torch.from_numpy(ttf.astype(np.float32)))


def _loss(net: Any, x: Any, y: Any, w: Any, ttf: Any) -> Any:
    from exporter.lnn.network import hazard_loss

    cum, log_ttf = net.cumulative_hazard(x)
    loss = hazard_loss(cum, y, w)
    has = ~ttf.isnan()
    if bool(has.any()):
        # Log-seconds error only where a failure is within range; small weight, the hazard leads.
        loss = loss + 0.1 * (log_ttf[has] - ttf[has]).abs().mean()
    return loss


def train_network(train: Samples, val: Samples, *, seed: int, units: int, epochs: int,
                  deadline: float, base: Any = None, lr: float = 5e-3,
                  tag: str = "main") -> TrainResult:
    """Fit a network (fresh, or a copy of `base`) with early stopping on validation loss."""
    import copy

    import torch

    from exporter.lnn.features import FEATURE_NAMES
    from exporter.lnn.network import NetworkSpec, build

    _seed_all(seed)
    if base is not None:
        net = copy.deepcopy(base)
        net.calib_scale.fill_(1.0)
        net.calib_bias.fill_(0.0)
    else:
        net = build(NetworkSpec(len(FEATURE_NAMES), MODEL_HORIZONS, units=units,
                                motor=max(4, units // 3)), seed=seed)
    hmax = MODEL_HORIZONS[-1]
    xt, yt, wt, tt = _tensors(train, hmax)
    xv, yv, wv, tv = _tensors(val, hmax)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batch = 256
    best, best_state, bad, epoch = math.inf, copy.deepcopy(net.state_dict()), 0, 0
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(len(yt), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = _loss(net, xt[idx], yt[idx], wt[idx], tt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        net.eval()
        with torch.no_grad():
            vl = sum(float(_loss(net, xv[i:i + 2048], yv[i:i + 2048], wv[i:i + 2048],
                                 tv[i:i + 2048])) * len(yv[i:i + 2048])
                     for i in range(0, len(yv), 2048)) / max(len(yv), 1)
        improved = vl < best - 1e-4
        if improved:
            best, best_state, bad = vl, copy.deepcopy(net.state_dict()), 0
        else:
            bad += 1
            # Plateau: halve the step size before giving up.
            for group in opt.param_groups:
                group["lr"] *= 0.5
        print(f"train run={tag} epoch={epoch} train_loss={total / max(n, 1):.4f} "
              f"val_loss={vl:.4f} best={best:.4f} elapsed_s={time.monotonic() - t0:.0f}",
              flush=True)
        if bad >= 5 or time.monotonic() > deadline:
            break
    net.load_state_dict(best_state)
    net.eval()
    return TrainResult(net, epoch, best, time.monotonic() - t0)


def predict_raw(net: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated P [N, H] and ttf seconds [N] in batches."""
    import torch

    ps, ts = [], []
    with torch.inference_mode():
        for i in range(0, len(x), 4096):
            p, t = net(torch.from_numpy(x[i:i + 4096]))
            ps.append(p.numpy())
            ts.append(t.numpy())
    if not ps:
        return np.zeros((0, len(net.spec.horizons))), np.zeros(0)
    return np.concatenate(ps).astype(np.float64), np.concatenate(ts).astype(np.float64)


def calibrate(net: Any, val: Samples) -> bool:
    """Fit per-horizon temperature and bias on the validation windows (natural distribution).

    Returns False (calibration left as it was) when validation has no failure to fit on.
    """
    import torch

    if len(val) == 0 or val.y.sum() == 0:
        log.warning("calibration skipped: no positive validation window")
        return False
    net.calib_scale.fill_(1.0)
    net.calib_bias.fill_(0.0)
    p, _ = predict_raw(net, val.x)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit = torch.from_numpy(np.log(p) - np.log1p(-p)).float()
    y = torch.from_numpy(val.y).float()
    w = torch.from_numpy(val.weight).float()[:, None]
    log_a = torch.zeros(p.shape[1], requires_grad=True)
    b = torch.zeros(p.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        z = logit * log_a.exp() + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
                * w).sum() / w.sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        net.calib_scale.copy_(log_a.exp().clamp(0.05, 20.0))
        net.calib_bias.copy_(b.clamp(-10.0, 10.0))
    return True


# --------------------------------------------------------------------------------------------
# Metrics


def auroc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties averaged); NaN with one class only."""
    from scipy.stats import rankdata

    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(score)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(net: Any, s: Samples, incidents: list[tuple[int, float, bool, str]], step: float,
             stride: int, threshold: float = ALERT_THRESHOLD) -> dict[str, Any]:
    """Held-out window and event metrics of `net` on the samples `s`.

    incidents: (global entity id, start, predictable, kind) for the entities in `s`.
    Alerting: an entity alerts while P(fail within the largest horizon) >= threshold; an
    incident counts as warned when an alert was up in the largest horizon before it.
    """
    p, ttf = predict_raw(net, s.x)
    horizons = net.spec.horizons
    out: dict[str, Any] = {"windows": int(len(s)), "entities": int(len(np.unique(s.entity)))}
    per_h = {}
    for k, h in enumerate(horizons):
        per_h[format_duration(h)] = {
            "auroc": _r(auroc(p[:, k], s.y[:, k])),
            "brier": _r(float(np.mean((p[:, k] - s.y[:, k]) ** 2))) if len(s) else None,
            "positive_rate": _r(float(s.y[:, k].mean())) if len(s) else None,
        }
    out["horizons"] = per_h
    hmax = horizons[-1]
    alert = p[:, -1] >= threshold
    leads: dict[str, list[float]] = {"predictable": [], "unpredictable": []}
    counts = {"predictable": [0, 0], "unpredictable": [0, 0]}
    by_kind: dict[str, list[int]] = {}
    false_alerts, days = 0, 0.0
    by_entity: dict[int, list[tuple[float, bool, str]]] = {}
    for ent, start, pred, kind in incidents:
        by_entity.setdefault(ent, []).append((start, pred, kind))
    for ent in np.unique(s.entity):
        rows = np.flatnonzero(s.entity == ent)
        rows = rows[np.argsort(s.t[rows])]
        t, a = s.t[rows], alert[rows]
        # Cycle spacing of this entity (corpora mix steps); stride * step when unknown.
        spacing = float(np.median(np.diff(t))) if len(t) > 1 else stride * step
        gap = spacing * 1.5
        days += len(rows) * spacing / 86400.0
        incs = by_entity.get(int(ent), [])
        for start, pred, kind in incs:
            key = "predictable" if pred else "unpredictable"
            counts[key][1] += 1
            kc = by_kind.setdefault(kind or "unknown", [0, 0])
            kc[1] += 1
            warned = a & (t < start) & (t >= start - hmax)
            if warned.any():
                counts[key][0] += 1
                kc[0] += 1
                leads[key].append(float(start - t[warned][0]))
        # Alert episodes: runs of alerting cycles; false when no incident follows within hmax.
        starts = np.flatnonzero(a & ~np.concatenate([[False], a[:-1] & (np.diff(t) <= gap)]))
        for i in starts:
            if not any(t[i] < st <= t[i] + hmax for st, _, _ in incs):
                false_alerts += 1
    out["alerting"] = {
        "rule": f"P(fail within {format_duration(hmax)}) >= {threshold}",
        "threshold": threshold,
        "event_recall_predictable": _r(counts["predictable"][0] / counts["predictable"][1])
        if counts["predictable"][1] else None,
        "incidents_predictable": counts["predictable"][1],
        "event_recall_unpredictable": _r(counts["unpredictable"][0] / counts["unpredictable"][1])
        if counts["unpredictable"][1] else None,
        "incidents_unpredictable": counts["unpredictable"][1],
        "false_alerts_per_entity_day": _r(false_alerts / days) if days else None,
        "median_lead_time_seconds": _r(float(np.median(leads["predictable"])))
        if leads["predictable"] else None,
        "warned_by_family": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())},
    }
    pos = np.isfinite(s.ttf) & (p[:, -1] >= threshold)
    if pos.any():
        err = np.abs(np.log(np.clip(ttf[pos], 60, hmax) / np.clip(s.ttf[pos], 60, hmax)))
        out["ttf_median_abs_log_error"] = _r(float(np.median(err)))
    return out


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


# --------------------------------------------------------------------------------------------
# Data


@dataclass
class Corpus:
    """Histories to replay; `analyses[i]` (when given) is history i's analysis, else `analysis`.

    strides: steps between replayed cycles per history (None: the --stride argument).
    domain: what was randomised, for the card.
    """

    histories: list[History]
    analysis: AnalysisConfig
    description: str
    analyses: list[AnalysisConfig] | None = None
    strides: list[int] | None = None
    domain: dict[str, Any] | None = None

    def analysis_of(self, i: int) -> AnalysisConfig:
        return self.analyses[i] if self.analyses else self.analysis

    def trained_for(self) -> dict[str, list[str]]:
        """The card's `trained_for`: [min, max] window and step over the histories."""
        an = self.analyses or [self.analysis]
        out = {}
        for key in ("window", "step"):
            vals = [float(getattr(a, key)) for a in an]
            out[key] = [format_duration(min(vals)), format_duration(max(vals))]
        return out


def _time_arg(flag: str, text: str) -> float:
    """`util.parse_time` (Unix seconds or RFC 3339, no zone = UTC); TrainError naming the flag."""
    try:
        return parse_time(text)
    except ValueError as err:
        raise TrainError(f"{flag}: {err}") from None


def _history_from_window(window: Any, incidents: list[Any]) -> History:
    s, e, ent, pred = incidents_to_arrays(incidents, tuple(window.entities))
    return History(window.label_names, tuple(window.entities), window.signals,
                   np.asarray(window.timestamps, float), np.asarray(window.values, float),
                   s, e, ent, pred)


def _user_corpus(args: argparse.Namespace) -> Corpus:
    from exporter.config import load_config

    if not args.config_file:
        raise TrainError("--config.file is required with --input or --start/--end")
    cfg: Config = load_config(args.config_file, require_queries=not args.input)
    analysis = cfg.analysis(args.analysis)
    incidents: list[Any] = []
    if args.incidents:
        from exporter.source.csvfile import read_incidents

        try:
            incidents = list(read_incidents(args.incidents, analysis.entity_labels))
        except (OSError, ValueError) as err:
            raise TrainError(f"--incidents: {err}") from err
    if args.input:
        from exporter.source.csvfile import CsvSource

        try:
            source: Any = CsvSource(args.input, analysis)
        except (OSError, ValueError) as err:
            raise TrainError(f"--input: {err}") from err
        start, end = source.time_range()
        what = f"CSV {args.input}"
    else:
        if not args.end:
            raise TrainError("--start needs --end")
        from exporter.source.history import HistorySource

        start, end = _time_arg("--start", args.start), _time_arg("--end", args.end)
        source = HistorySource(cfg.source)
        what = f"{cfg.source.url} {args.start}..{args.end}"

    async def fetch() -> Any:
        from exporter.source import SourceError

        try:
            getter = getattr(source, "fetch_range", source.fetch)
            return await getter(analysis, start, end)
        except SourceError as err:
            raise TrainError(f"{what}: {err}") from err
        finally:
            await source.close()

    window = asyncio.run(fetch()).block
    if not window.entities:
        raise TrainError(f"no samples in {what}")
    history = _history_from_window(window, incidents)
    if len(history.inc_start) == 0:
        raise TrainError("no incidents of known entities: pass --incidents (the exporter "
                         "records them to <state_dir>/incidents.csv)")
    return Corpus([history], analysis,
                  f"{what}: {len(window.entities)} entities, "
                  f"{format_duration(end - start)}, {len(history.inc_start)} incidents")


# Domain randomisation of the simulator corpus (see models/README.md): steps and their shares.
CORPUS_STEPS = (15.0, 30.0, 60.0, 120.0, 300.0)
CORPUS_STEP_SHARES = (0.15, 0.15, 0.3, 0.15, 0.25)
# Share of fleets that get the extra benign families (the rest keep the plain simulator).
BENIGN_EXTRA_SHARE = 0.75
# Signals where each simulator family's build-up shows first (exporter/source/sim_scenarios.py).
PRECURSOR_SIGNALS: dict[str, tuple[str, ...]] = {
    "memory_leak": ("memory",),
    "disk_fill": ("disk",),
    "cpu_saturation": ("cpu", "load"),
    "connection_exhaustion": ("connections",),
    "network_degradation": ("network_errors",),
    "cascade": ("latency_seconds", "error_ratio", "connections"),
}
# Replay every 10 minutes of simulated time, whatever the step.
CORPUS_STRIDE_SECONDS = 600.0


@dataclass(frozen=True)
class FleetPlan:
    """One simulated fleet of the corpus: `simulate_fleet` arguments and the domain draw."""

    seed: int
    entities: int
    start: float
    duration: float
    step: float
    families: tuple[str, ...] | None  # None: every failure family; (): a benign-only fleet
    failure_fraction: float
    missing: bool
    benign: tuple[str, ...]  # extra benign families (simulator.BENIGN_FAMILIES)
    randomise: bool  # re-express the signals (randomise_domain) with `seed`


def corpus_plan(fleets: int, seed: int, randomise: bool = True) -> list[FleetPlan]:
    """The fleets `simulator_corpus` builds, drawn (cheaply) from `seed`."""
    from exporter.source.simulator import BENIGN_FAMILIES

    rng = np.random.default_rng(seed)
    plans = []
    for i in range(fleets):
        n_ent = int(rng.choice([8, 12, 16, 24]))
        days = float(rng.choice([1.5, 2.0, 3.0]))
        step = 60.0
        benign: tuple[str, ...] = ()
        if randomise:
            step = float(rng.choice(CORPUS_STEPS, p=CORPUS_STEP_SHARES))
            if rng.random() < BENIGN_EXTRA_SHARE:
                benign = BENIGN_FAMILIES
        plans.append(FleetPlan(
            seed * 1000 + i, n_ent, 1_700_000_000.0 + i * 86400 * 7, days * 86400, step,
            # Every 6th fleet is benign: false alarms must be learned from quiet fleets too.
            () if i % 6 == 5 else None, float(rng.uniform(0.25, 0.5)),
            bool(rng.random() < 0.7), benign, randomise))
    return plans


def simulator_corpus(fleets: int, seed: int, randomise: bool = True,
                     plans: list[FleetPlan] | None = None) -> Corpus:
    """A varied simulated corpus: all families, benign fleets, sizes and noise levels.

    randomise: per fleet, draw the step from CORPUS_STEPS, add the extra benign families
    (`simulator.BENIGN_FAMILIES`) to BENIGN_EXTRA_SHARE of the fleets, and re-express the
    signals (`randomise_domain`: units, offsets, direction, capacity and kind dropped, signal
    subsets, noise with heavy tails, extra seasonality). False gives the fixed 60 s corpus of
    models up to 0.1 (the same fleets for the same seed). plans: the fleets to build instead
    of `corpus_plan(fleets, seed, randomise)` (tests use small ones).
    """
    from dataclasses import replace

    from exporter.source import simulator

    base = simulator.demo_config().analysis()
    plans = corpus_plan(fleets, seed, randomise) if plans is None else plans
    histories, analyses, strides = [], [], []
    steps: dict[str, int] = {}
    domain_counts: dict[str, int] = {}
    for i, p in enumerate(plans):
        fleet = simulator.simulate_fleet(p.seed, p.entities, p.start, p.duration, step=p.step,
                                         families=p.families, failure_fraction=p.failure_fraction,
                                         missing=p.missing, benign=p.benign)
        h = _history_from_fleet(fleet, group=i)
        analysis = replace(base, step=Duration(p.step))
        if p.randomise:
            h, analysis, changes = randomise_domain(h, analysis, np.random.default_rng(p.seed))
            for key in changes:
                domain_counts[key] = domain_counts.get(key, 0) + 1
        histories.append(h)
        analyses.append(analysis)
        strides.append(max(1, int(round(CORPUS_STRIDE_SECONDS / p.step))))
        steps[format_duration(p.step)] = steps.get(format_duration(p.step), 0) + 1
    seeds = f"{plans[0].seed}..{plans[-1].seed}" if plans else "none"
    desc = (f"simulator corpus: {len(plans)} fleets (seeds {seeds}, every 6th benign), "
            f"{sum(len(h.entities) for h in histories)} entities, "
            f"{sum(len(h.inc_start) for h in histories)} incidents, families "
            f"{', '.join(simulator.FAMILIES)}, 1.5-3 days")
    if not any(p.randomise or p.benign or p.step != 60 for p in plans):
        return Corpus(histories, base, desc + " at 60 s")
    benign_fleets = sum(1 for p in plans if p.benign)
    desc += (f"; domain-randomised: steps {steps} (fleets per step), extra benign families on "
             f"{benign_fleets} fleets")
    domain = {"steps": steps, "extra_benign_fleets": benign_fleets,
              "benign_families": list(simulator.BENIGN_FAMILIES),
              "signal_changes_fleets": dict(sorted(domain_counts.items()))}
    return Corpus(histories, base, desc, analyses, strides, domain)


def randomise_domain(h: History, analysis: AnalysisConfig, rng: np.random.Generator
                     ) -> tuple[History, AnalysisConfig, list[str]]:
    """Re-express one fleet's signals as another fleet might: same events, other numbers.

    Per fleet: extra daily seasonality (amplitude 0.1-0.6, any phase) and multiplicative noise
    (sigma 0.01-0.1, Student-t tails with 2-5 degrees of freedom) on signals without a
    capacity, small additive heavy-tailed noise on those with one (never pushed past 0.9 of
    the capacity unless already there); per signal: a unit scale 10^(-2..3) (the capacity
    scales with it), a "free" view (capacity - used, direction down), the capacity or the kind
    dropped (kind "other"), an offset on signals without capacity (absolute units); and a
    random subset of 3 or more signals. Returns the new history, analysis and the names of
    the changes made (for the card).
    """
    from dataclasses import replace

    values = np.array(h.values, dtype=np.float64, copy=True)  # [E, S, T]
    sigs = {s.name: s for s in analysis.signals}
    changes: list[str] = []
    tday = h.timestamps / 86400.0
    if rng.random() < 0.4:
        amp, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 1)
        season = 1 + amp * np.cos(2 * np.pi * (tday - phase))
        changes.append("seasonality")
    else:
        season = None
    noise_sigma = float(rng.uniform(0.01, 0.1)) if rng.random() < 0.6 else 0.0
    noise_df = float(rng.choice([2.0, 3.0, 5.0]))
    if noise_sigma:
        changes.append("noise")
    keep = np.ones(len(h.signals), dtype=bool)
    if rng.random() < 0.3 and len(h.signals) > 3:
        k = int(rng.integers(3, len(h.signals)))
        keep[:] = False
        keep[rng.choice(len(h.signals), k, replace=False)] = True
        changes.append("signal_subset")
    new_sigs = []
    for j, name in enumerate(h.signals):
        s = sigs[name]
        x = values[:, j]
        cap = s.capacity
        u = rng.random(6)
        if noise_sigma:
            tail = np.clip(rng.standard_t(noise_df, x.shape), -20, 20) * noise_sigma
            if cap:
                x = np.clip(x + 0.2 * tail * cap, 0, np.maximum(x, 0.9 * cap))
            else:
                x = x * np.exp(tail)
        if season is not None and not cap:
            x = x * season[None, :]
        direction = s.direction
        kind = s.kind
        if cap and u[0] < 0.25:
            x, direction = cap - x, "down"
            changes.append("free_view")
        if cap and u[1] < 0.2 and direction == "up":
            cap = None
            changes.append("capacity_dropped")
        elif not cap and u[2] < 0.25:
            x = x + float(rng.uniform(0.5, 5.0)) * (float(np.nan_to_num(np.nanmedian(np.abs(x)))) or 1.0)
            changes.append("offset")
        if u[3] < 0.5:
            scale = float(10 ** rng.uniform(-2, 3))
            x = x * scale
            cap = cap * scale if cap else cap
            changes.append("units")
        if u[4] < 0.1:
            kind = "other"
            changes.append("kind_other")
        values[:, j] = x
        new_sigs.append(replace(s, capacity=cap, direction=direction, kind=kind))
    names = tuple(n for n, k in zip(h.signals, keep, strict=True) if k)
    # A failure whose build-up shows only in signals the subset dropped has no precursor in
    # this fleet's data: mark it unpredictable (left out of training, kept in test scores).
    predictable = np.array([bool(p) and bool(set(PRECURSOR_SIGNALS.get(str(h.family[e]), names))
                                             & set(names))
                            for p, e in zip(h.inc_predictable, h.inc_entity, strict=True)],
                           dtype=bool)
    new = History(h.label_names, h.entities, names, h.timestamps, values[:, keep],
                  h.inc_start, h.inc_end, h.inc_entity, predictable, h.family, h.group)
    signals = tuple(s for s, k in zip(new_sigs, keep, strict=True) if k)
    return new, replace(analysis, signals=signals), sorted(set(changes))


def _history_from_fleet(fleet: Any, group: int) -> History:
    entities = tuple(tuple(e) if not isinstance(e, str) else (e,) for e in _fleet_entities(fleet))
    s, e, ent, pred = incidents_to_arrays(list(fleet.incidents), entities)
    fam = getattr(fleet, "scenarios", None) or getattr(fleet, "families", None)
    family = np.array(list(fam) if fam is not None else [""] * len(entities), dtype=object)
    return History(tuple(fleet.label_names), entities, tuple(fleet.signals),
                   np.asarray(fleet.timestamps, float), np.asarray(fleet.values, float),
                   s, e, ent, pred, family, np.full(len(entities), group, dtype=np.int64))


def _fleet_entities(fleet: Any) -> list[Any]:
    ents = getattr(fleet, "entities", None)
    if ents is None:
        raise TrainError("simulated fleet has no entities attribute")
    return list(ents)


# --------------------------------------------------------------------------------------------
# Driver


def _split_groups(groups: np.ndarray, seed: int) -> tuple[set[int], set[int], set[int]]:
    """Whole groups (fleets or entities) to train / validation / test, about 60/20/20."""
    uniq = np.unique(groups)
    order = np.random.default_rng(seed).permutation(uniq)
    n = len(order)
    n_test = max(1, int(round(0.2 * n)))
    n_val = max(1, int(round(0.2 * n)))
    if n < 3:
        raise TrainError(f"need at least 3 entities/fleets to split, got {n}")
    test = set(order[:n_test].tolist())
    val = set(order[n_test:n_test + n_val].tolist())
    train = set(order[n_test + n_val:].tolist())
    return train, val, test


def _incident_list(histories: list[History], offsets: list[int]) -> list[tuple[int, float, bool,
                                                                              str]]:
    out = []
    for h, off in zip(histories, offsets, strict=True):
        for s, ent, pred in zip(h.inc_start, h.inc_entity, h.inc_predictable, strict=True):
            out.append((int(ent) + off, float(s), bool(pred), str(h.family[ent])))
    return out


def _weighted(samples: Samples, mask: np.ndarray, keep: float) -> Samples:
    """Subset whose quiet windows, thinned to `keep`, are weighted back by 1 / keep."""
    sub = samples.subset(mask)
    sub.weight = np.where(sub.y[:, -1] == 0, 1 / keep, 1.0)
    return sub


def run(args: argparse.Namespace) -> int:
    global _THREADS
    _THREADS = max(1, args.threads)
    t_start = time.monotonic()
    deadline_all = t_start + 60 * args.max_minutes
    try:
        if args.corpus == "simulator":
            corpus = simulator_corpus(args.fleets, args.seed, args.domain == "randomised")
            split_by = "fleet"
        else:
            corpus = _user_corpus(args)
            split_by = "entity"
    except TrainError as err:
        log.error("training data unusable err=%s", err)
        print(f"aura train: {err}")
        return 2
    analysis = corpus.analysis
    print(f"train data={corpus.description}", flush=True)
    rng = np.random.default_rng(args.seed)
    keep_rate = 0.25
    if split_by == "fleet":
        # Split whole fleets before replay so held-out fleets are replayed in full while
        # training fleets keep only a share of their quiet windows (weighted back).
        tr_g, va_g, te_g = _split_groups(np.arange(len(corpus.histories)), args.seed)
    parts, offsets, off = [], [], 0
    for i, h in enumerate(corpus.histories):
        thin = split_by == "fleet" and i in tr_g
        stride = corpus.strides[i] if corpus.strides else args.stride
        parts.append(build_samples(h, corpus.analysis_of(i), MODEL_HORIZONS, stride=stride,
                                   negative_keep=keep_rate if thin else 1.0,
                                   rng=rng, entity_offset=off))
        offsets.append(off)
        off += len(h.entities)
    samples = Samples.concat(parts)
    incidents = _incident_list(corpus.histories, offsets)
    t_feat = time.monotonic() - t_start
    print(f"train windows={len(samples)} positives_4h={int(samples.y[:, -1].sum())} "
          f"features_s={t_feat:.0f}", flush=True)
    negative = samples.y[:, -1] == 0
    if split_by == "fleet":
        keys = samples.group
        thin_ok = np.ones(len(samples), dtype=bool)
    else:
        keys = samples.entity
        tr_g, va_g, te_g = _split_groups(keys, args.seed)
        thin_ok = ~negative | (rng.random(len(samples)) < keep_rate)
    in_tr, in_va, in_te = (np.isin(keys, list(g)) for g in (tr_g, va_g, te_g))
    if split_by != "fleet":
        samples.weight = np.where(in_tr & negative, 1 / keep_rate, 1.0)
    train_mask = in_tr & ~samples.unpredictable & thin_ok
    val_mask_fit = in_va & ~samples.unpredictable
    val_cal = samples.subset(in_va)
    val_cal.weight = np.ones(len(val_cal))
    test = samples.subset(in_te)
    base_net = None
    if args.base:
        from exporter.lnn.artifacts import ModelError, load_model

        try:
            base_net, _ = load_model(args.base)
        except ModelError as err:
            print(f"aura train: --base: {err}")
            return 2
    n_lofo = len([f for f in args.lofo.split(",") if f]) if args.corpus == "simulator" else 0
    main_budget = (deadline_all - time.monotonic()) / (1 + 0.6 * n_lofo)
    # Early stopping reads a thinned validation set (weighted back) to keep epochs cheap.
    val_thin = np.random.default_rng(args.seed + 3).random(len(samples)) < 0.35
    val_mask_fit &= ~negative | val_thin
    val_fit = _weighted(samples, val_mask_fit, 0.35)
    result = train_network(
        samples.subset(train_mask), val_fit, seed=args.seed, units=args.units,
        epochs=args.epochs, deadline=time.monotonic() + main_budget, base=base_net,
        lr=1e-3 if base_net is not None else 5e-3)
    if not calibrate(result.net, val_cal) and base_net is not None:
        # Too few validation failures to refit: keep the base model's calibration.
        result.net.calib_scale.copy_(base_net.calib_scale)
        result.net.calib_bias.copy_(base_net.calib_bias)
    step = float(analysis.step)
    test_inc = [i for i in incidents if i[0] in set(np.unique(test.entity).tolist())]
    metrics = evaluate(result.net, test, test_inc, step, args.stride)
    print(f"train test_metrics={metrics}", flush=True)
    if corpus.analyses:
        # The same held-out fleets, by step: does the model hold at 15 s and at 5 m?
        fleet_step = np.array([float(a.step) for a in corpus.analyses])[test.group]
        by_step = {}
        for st in np.unique(fleet_step):
            sub = test.subset(fleet_step == st)
            ents = set(np.unique(sub.entity).tolist())
            m = evaluate(result.net, sub, [i for i in test_inc if i[0] in ents], float(st),
                         args.stride)
            by_step[format_duration(float(st))] = {
                k: m[k] for k in ("windows", "entities", "alerting")} | {
                "auroc": {h: v["auroc"] for h, v in m["horizons"].items()}}
        metrics["by_step"] = by_step
        print(f"train test_by_step={by_step}", flush=True)

    lofo: dict[str, Any] = {}
    for fam in [f for f in args.lofo.split(",") if f] if args.corpus == "simulator" else []:
        ent_fam = samples.family
        budget = (deadline_all - time.monotonic()) / max(1, n_lofo - len(lofo))
        if budget < 30:
            lofo[fam] = {"skipped": "time budget exhausted"}
            continue
        not_fam = ent_fam != fam
        r = train_network(samples.subset(train_mask & not_fam), _weighted(
            samples, val_mask_fit & not_fam, 0.35), seed=args.seed, units=args.units, epochs=args.epochs,
            deadline=time.monotonic() + budget, tag=f"lofo-{fam}")
        calibrate(r.net, samples.subset(in_va & not_fam))
        # Test on held-out fleets' entities of that family and their benign neighbours.
        tmask = in_te & ((ent_fam == fam) | (ent_fam == "benign") | (ent_fam == ""))
        tsub = samples.subset(tmask)
        ents = set(np.unique(tsub.entity).tolist())
        m = evaluate(r.net, tsub, [i for i in incidents if i[0] in ents], step, args.stride)
        lofo[fam] = {"train": f"all families except {fam}",
                     "test": f"held-out fleets' {fam} and benign entities",
                     **{k: m[k] for k in ("windows", "entities", "horizons", "alerting")}}
        print(f"train lofo={fam} metrics={lofo[fam]}", flush=True)

    from exporter.lnn.artifacts import save_model

    out = Path(args.output)
    elapsed = time.monotonic() - t_start
    card = {
        "name": args.name or out.name,
        "version": MODEL_VERSION,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "description": "CfC (ncps, AutoNCP wiring) failure model: P(failure within horizon) "
                       "from a monotone cumulative hazard, and time to failure.",
        "command": _command(args),
        "horizons": [format_duration(h) for h in MODEL_HORIZONS],
        "topology_inputs": False,
        "ttf_threshold": ALERT_THRESHOLD,
        "feature_params": {"tokens_pooled_from": "the last tokens*pool steps of the window",
                           "horizon_scale_seconds": MODEL_HORIZONS[-1],
                           "baseline": "median/MAD of the window's first half"},
        "trained_for": corpus.trained_for(),
        "training": {
            "data": corpus.description,
            **({"domain_randomisation": corpus.domain} if corpus.domain else {}),
            "analysis": {"window": format_duration(analysis.window),
                         **({"steps": corpus.trained_for()["step"]} if corpus.analyses else
                            {"step": format_duration(analysis.step)}),
                         "signals": [f"{s.name} ({s.kind}{', capacity ' + str(s.capacity) if s.capacity else ''})"
                                     for s in analysis.signals]},
            **({"stride_seconds": CORPUS_STRIDE_SECONDS} if corpus.strides else
               {"stride_steps": args.stride}),
            "split": f"by {split_by} (60/20/20 train/validation/test); an entity is in exactly "
                     "one split",
            "windows": {"train": int(train_mask.sum()), "validation": int(in_va.sum()),
                        "test": int(in_te.sum())},
            "negative_keep": keep_rate,
            "excluded": "windows while the entity is down; training leaves out windows before "
                        "unpredictable (sudden) failures, evaluation keeps them",
            "seed": args.seed,
            "base": args.base,
            "epochs": result.epochs,
            "best_validation_loss": round(result.best_val, 5),
            "seconds": round(elapsed),
        },
        "metrics": {"test": metrics, "leave_one_family_out": lofo},
    }
    save_model(out, result.net, card)
    print(f"train wrote={out} seconds={elapsed:.0f}", flush=True)
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["aura train"]
    for flag, value in (("--config.file", args.config_file), ("--input", args.input),
                        ("--start", args.start), ("--end", args.end),
                        ("--corpus", args.corpus), ("--incidents", args.incidents),
                        ("--output", args.output), ("--base", args.base),
                        ("--seed", args.seed), ("--max-minutes", args.max_minutes),
                        ("--fleets", args.fleets if args.corpus else None),
                        ("--domain", args.domain if args.corpus else None),
                        ("--epochs", args.epochs if args.epochs != 30 else None)):
        if value is not None:
            parts.append(f"{flag}={value}")
    return " ".join(parts)
