"""Topology engine: windows -> point clouds -> Rips persistence -> features, anomaly, fleet.

Public entry point: `TopologyStage` (exporter.tda.stage). Submodules import heavy libraries
(ripser, scipy) only inside functions; importing this package starts nothing. Its names are
imported on first use (PEP 562): a persistence pool worker, which imports
exporter.tda.persistence to run its tasks, then loads neither the stage nor the configuration
and baselines behind it (~9 MiB less per worker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.tda.features import FEATURE_NAMES
    from exporter.tda.stage import TopologyError, TopologyStage

__all__ = ["FEATURE_NAMES", "TopologyError", "TopologyStage"]


def __getattr__(name: str) -> Any:
    if name == "FEATURE_NAMES":
        from exporter.tda import features

        return features.FEATURE_NAMES
    if name in ("TopologyError", "TopologyStage"):
        from exporter.tda import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
