"""Failure-model inference cost per entity: features + one batched CfC forward.

    .venv/bin/python benchmarks/bench_lnn.py [--entities 10000] [--model models/default]

Uses the simulator's signals and window (9 signals, 2 h at 1 min) on random-walk data with 5 %
missing samples. Target: <= 0.2 ms per entity on 2 cores. Prints medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from exporter.lnn.features import FEATURE_NAMES, step_features
    from exporter.lnn.predictor import FailurePredictor
    from exporter.source.simulator import demo_config
    from exporter.windows import Window

    analysis = demo_config().analysis()
    model = Path(args.model)
    if not (model / "model.pt").is_file():
        from exporter.lnn.artifacts import save_model
        from exporter.lnn.network import NetworkSpec, build

        model = Path(tempfile.mkdtemp()) / "untrained"
        save_model(model, build(NetworkSpec(len(FEATURE_NAMES),
                                            (900.0, 1800.0, 3600.0, 7200.0, 14400.0)), seed=0),
                   {"name": "untrained", "version": "0"})
    pred = FailurePredictor.load(model, threads=args.threads)

    rng = np.random.default_rng(0)
    e, s, t = args.entities, len(analysis.signals), analysis.steps
    values = 0.5 + 0.01 * np.cumsum(rng.standard_normal((e, s, t)), axis=-1)
    values[rng.random(values.shape) < 0.05] = np.nan
    ts = 1_700_000_000.0 + 60.0 * np.arange(t)
    window = Window(analysis.name, ("instance",), tuple((f"h{i}",) for i in range(e)),
                    tuple(x.name for x in analysis.signals), ts, values)

    feats, fwd, total = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        x = step_features(window, analysis)
        t1 = time.perf_counter()
        with torch.inference_mode():
            pred.net_(torch.from_numpy(x))
        t2 = time.perf_counter()
        pred.predict(window, analysis, None)
        t3 = time.perf_counter()
        feats.append(t1 - t0)
        fwd.append(t2 - t1)
        total.append(t3 - t2)
    per = 1e3 / e
    print(f"model={pred.info['model']} entities={e} signals={s} steps={t} "
          f"threads={torch.get_num_threads()} units={pred.net_.spec.units}")
    print(f"features_ms_per_entity={statistics.median(feats) * per:.4f}")
    print(f"forward_ms_per_entity={statistics.median(fwd) * per:.4f}")
    print(f"predict_ms_per_entity={statistics.median(total) * per:.4f} (features + forward + "
          f"horizon mapping; target 0.2)")


if __name__ == "__main__":
    main()
