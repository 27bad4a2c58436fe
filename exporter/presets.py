"""Built-in signal sets, copied into an analysis by `preset: NAME` (user signals override by name).

Queries return one series per entity, already reduced to the preset's entity labels, and are
written as ratios or rates so that one model serves entities of any size.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "node": {
        "entity_labels": ["instance"],
        "signals": [
            {
                "name": "cpu",
                "kind": "saturation",
                "capacity": 1.0,
                "query": '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
            },
            {
                "name": "memory",
                "kind": "resource",
                "capacity": 1.0,
                "query": "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
            },
            {
                "name": "disk",
                "kind": "resource",
                "capacity": 1.0,
                "query": 'max by (instance) (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"})',
            },
            {
                "name": "load",
                "kind": "saturation",
                "query": 'node_load5 / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"})',
            },
            {
                "name": "network_errors",
                "kind": "network",
                "query": 'sum by (instance) (rate(node_network_receive_errs_total{device!="lo"}[5m]) + rate(node_network_transmit_errs_total{device!="lo"}[5m]) + rate(node_network_receive_drop_total{device!="lo"}[5m]) + rate(node_network_transmit_drop_total{device!="lo"}[5m]))',
            },
            {
                "name": "network_traffic",
                "kind": "network",
                "query": 'sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"}[5m]) + rate(node_network_transmit_bytes_total{device!="lo"}[5m]))',
            },
        ],
    },
}
