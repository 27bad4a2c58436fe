"""Topology engine: windows -> point clouds -> Rips persistence -> features, anomaly, fleet.

Public entry point: `TopologyStage` (exporter.tda.stage). Submodules import heavy libraries
(ripser, scipy) only inside functions; importing this package starts nothing.
"""

from exporter.tda.features import FEATURE_NAMES
from exporter.tda.stage import TopologyError, TopologyStage

__all__ = ["FEATURE_NAMES", "TopologyError", "TopologyStage"]
