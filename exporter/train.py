"""`aura train`: the command line: flags, the user's corpus, the split, the run, the model card.

The corpus comes from `exporter.lnn.corpus`, fitting, calibration and held-out scores from
`exporter.lnn.trainer`; this module reads the flags and the user's data, splits the windows,
runs them and writes the model directory.

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
import time
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import Config, format_duration
from exporter.lnn.corpus import (
    CORPUS_STRIDE_SECONDS,
    Corpus,
    history_from_window,
    simulator_corpus,
)
from exporter.lnn.dataset import Samples, build_samples
from exporter.lnn.trainer import (
    ALERT_THRESHOLD,
    MODEL_HORIZONS,
    calibrate,
    evaluate,
    incident_list,
    train_network,
)
from exporter.util import format_rfc3339, parse_time

log = logging.getLogger(__name__)

LOFO_FAMILIES = ("memory_leak", "disk_fill")
MODEL_VERSION = "0.2.0"


class TrainError(Exception):
    """Training cannot proceed (no data, no incidents, bad arguments)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`aura train`'s flags on `parser` (the CLI's subparser)."""
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


def _time_arg(flag: str, text: str) -> float:
    """`util.parse_time` (Unix seconds or RFC 3339, no zone = UTC); TrainError naming the flag."""
    try:
        return parse_time(text)
    except ValueError as err:
        raise TrainError(f"{flag}: {err}") from None


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
    history = history_from_window(window, incidents)
    if len(history.inc_start) == 0:
        raise TrainError("no incidents of known entities: pass --incidents (the exporter "
                         "records them to <state_dir>/incidents.csv)")
    return Corpus([history], analysis,
                  f"{what}: {len(window.entities)} entities, "
                  f"{format_duration(end - start)}, {len(history.inc_start)} incidents")


# --------------------------------------------------------------------------------------------
# Driver


def split_groups(groups: np.ndarray, seed: int) -> tuple[set[int], set[int], set[int]]:
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


def weighted_subset(samples: Samples, mask: np.ndarray, keep: float) -> Samples:
    """Subset whose quiet windows, thinned to `keep`, are weighted back by 1 / keep."""
    sub = samples.subset(mask)
    sub.weight = np.where(sub.y[:, -1] == 0, 1 / keep, 1.0)
    return sub


def run(args: argparse.Namespace) -> int:
    """Build the corpus, split, train, calibrate, score and write the model directory.

    Returns the exit code: 0, or 2 when the data is unusable (the reason is printed and logged).
    """
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
        tr_g, va_g, te_g = split_groups(np.arange(len(corpus.histories)), args.seed)
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
    incidents = incident_list(corpus.histories, offsets)
    t_feat = time.monotonic() - t_start
    print(f"train windows={len(samples)} positives_4h={int(samples.y[:, -1].sum())} "
          f"features_s={t_feat:.0f}", flush=True)
    negative = samples.y[:, -1] == 0
    if split_by == "fleet":
        keys = samples.group
        thin_ok = np.ones(len(samples), dtype=bool)
    else:
        keys = samples.entity
        tr_g, va_g, te_g = split_groups(keys, args.seed)
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
    val_fit = weighted_subset(samples, val_mask_fit, 0.35)
    result = train_network(
        samples.subset(train_mask), val_fit, seed=args.seed, units=args.units,
        epochs=args.epochs, deadline=time.monotonic() + main_budget, base=base_net,
        lr=1e-3 if base_net is not None else 5e-3, threads=args.threads)
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
        r = train_network(samples.subset(train_mask & not_fam), weighted_subset(
            samples, val_mask_fit & not_fam, 0.35), seed=args.seed, units=args.units, epochs=args.epochs,
            deadline=time.monotonic() + budget, tag=f"lofo-{fam}", threads=args.threads)
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
        "created": format_rfc3339(time.time()),
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
