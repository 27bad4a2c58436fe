"""AURA: a Prometheus-native sidecar exporter for predictive monitoring."""

__version__ = "0.1.0"
