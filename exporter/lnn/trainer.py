"""The failure network's trainer: fit with early stopping, calibrate, score held-out windows.

`train_network` fits a `exporter.lnn.network` model on `Samples` (hazard loss plus a small
time-to-failure term), `calibrate` fits per-horizon temperature and bias on the validation
split, `evaluate` gives the held-out window metrics (AUROC, Brier) and event metrics (recall,
false alerts per entity-day, lead time) that `aura train` writes into the model card.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporter.config import format_duration
from exporter.lnn.dataset import History, Samples

log = logging.getLogger("exporter.train")

MODEL_HORIZONS = (900.0, 1800.0, 3600.0, 7200.0, 14400.0)
ALERT_THRESHOLD = 0.5


@dataclass
class TrainResult:
    """One `train_network` run: the best network (eval mode), epochs run, its validation loss
    (weighted hazard + ttf loss per window) and wall-clock seconds.
    """
    net: Any
    epochs: int
    best_val: float
    seconds: float


def _seed_all(seed: int, threads: int) -> None:
    import torch

    torch.manual_seed(seed)
    # Measured: on a loaded 2-core machine 2 intra-op threads made a training step 10-30x
    # slower than 1 (OpenMP workers spin waiting for each other); --threads raises it.
    torch.set_num_threads(max(1, threads))
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
                  tag: str = "main", threads: int = 1) -> TrainResult:
    """Fit a network (fresh, or a copy of `base`) with early stopping on validation loss.

    `threads`: torch intra-op threads (1 is fastest on a loaded 2-core machine, measured).
    """
    import copy

    import torch

    from exporter.lnn.features import FEATURE_NAMES
    from exporter.lnn.network import NetworkSpec, build

    _seed_all(seed, threads)
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


def incident_list(histories: list[History],
                  offsets: list[int]) -> list[tuple[int, float, bool, str]]:
    """`evaluate`'s incidents: (entity id + the history's offset, start, predictable, family)."""
    out = []
    for h, off in zip(histories, offsets, strict=True):
        for s, ent, pred in zip(h.inc_start, h.inc_entity, h.inc_predictable, strict=True):
            out.append((int(ent) + off, float(s), bool(pred), str(h.family[ent])))
    return out
