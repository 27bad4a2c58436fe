"""Built-in signal sets, copied into an analysis by `preset: NAME` (user signals override by name).

Every query aggregates `by (<entity labels>)`, so it returns exactly one series per entity
whatever other labels (job, container, device, le) the source series carry; and queries are
written as ratios or rates where they can be, so that one model serves entities of any size.
Each signal says which direction is bad (`direction: down` for free space, credits) and, where a
resource can run out, the level at which it does (`capacity`).

Copyable YAML for every preset, with the exporters each one expects: docs/presets.md.
"""

from __future__ import annotations

from typing import Any

_NODE_FS = 'fstype!~"tmpfs|overlay|squashfs"'
_K8S_CONTAINERS = 'container!="", container!="POD"'


def _rds(metric: str) -> str:
    """`metric` with the RDS instance identifier of either CloudWatch exporter as `resource`."""
    return (f'label_replace(label_replace({metric}, "resource", "$1", "dbinstance_identifier", '
            '"(.+)"), "resource", "$1", "dimension_DBInstanceIdentifier", "(.+)")')


def _ec2(metric: str) -> str:
    """`metric` with the EC2 instance id of either CloudWatch exporter as `resource`."""
    return (f'label_replace(label_replace({metric}, "resource", "$1", "instance_id", "(.+)"), '
            '"resource", "$1", "dimension_InstanceId", "(.+)")')

PRESETS: dict[str, dict[str, Any]] = {
    # node_exporter hosts.
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
                "query": "max by (instance) "
                         "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
            },
            {
                "name": "disk",
                "kind": "resource",
                "capacity": 1.0,
                "query": f"max by (instance) (1 - node_filesystem_avail_bytes{{{_NODE_FS}}} "
                         f"/ node_filesystem_size_bytes{{{_NODE_FS}}})",
            },
            {
                "name": "load",
                "kind": "saturation",
                "query": "max by (instance) (node_load5) "
                         '/ count by (instance) (node_cpu_seconds_total{mode="idle"})',
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
    # Kubernetes pods: cAdvisor (kubelet) + kube-state-metrics. Pods without limits have no
    # memory/cpu ratio series (their columns stay empty); set limits or override those signals.
    "kubernetes-pods": {
        "entity_labels": ["namespace", "pod"],
        "signals": [
            {
                "name": "memory",
                "kind": "resource",
                "capacity": 1.0,
                "query": "sum by (namespace, pod) (container_memory_working_set_bytes"
                         f"{{{_K8S_CONTAINERS}}}) / sum by (namespace, pod) "
                         '(kube_pod_container_resource_limits{resource="memory", unit="byte"})',
            },
            {
                "name": "cpu",
                "kind": "saturation",
                "capacity": 1.0,
                "query": "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total"
                         f"{{{_K8S_CONTAINERS}}}[5m])) / sum by (namespace, pod) "
                         '(kube_pod_container_resource_limits{resource="cpu", unit="core"})',
            },
            {
                "name": "cpu_throttling",
                "kind": "saturation",
                "query": "sum by (namespace, pod) (rate(container_cpu_cfs_throttled_periods_total"
                         f"{{{_K8S_CONTAINERS}}}[5m])) / sum by (namespace, pod) "
                         f"(rate(container_cpu_cfs_periods_total{{{_K8S_CONTAINERS}}}[5m]))",
            },
            {
                "name": "restarts",
                "kind": "errors",
                "query": "sum by (namespace, pod) "
                         "(rate(kube_pod_container_status_restarts_total[15m]))",
            },
            {
                # Restarts in the last 15 m of containers whose last termination was an OOM
                # kill (kube-state-metrics has no OOM counter of its own).
                "name": "oom_kills",
                "kind": "errors",
                "query": "sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total"
                         "[15m]) * on (namespace, pod, container) group_left max by "
                         "(namespace, pod, container) "
                         '(kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}))',
            },
            {
                "name": "not_ready",
                "kind": "errors",
                "query": 'max by (namespace, pod) (kube_pod_status_ready{condition="false"})',
            },
        ],
    },
    # HTTP services instrumented with the usual client-library names. `service` comes from
    # Kubernetes service discovery; use `job` instead by overriding entity_labels and queries.
    "http-service": {
        "entity_labels": ["service"],
        "signals": [
            {
                "name": "request_rate",
                "kind": "other",
                "query": "sum by (service) (rate(http_requests_total[5m]))",
            },
            {
                # `or ... * 0` keeps the ratio at 0 (not absent) for services without 5xx.
                "name": "error_ratio",
                "kind": "errors",
                "capacity": 1.0,
                "query": '(sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) '
                         "or sum by (service) (rate(http_requests_total[5m])) * 0) "
                         "/ sum by (service) (rate(http_requests_total[5m]))",
            },
            {
                "name": "latency_p99",
                "kind": "latency",
                "query": "histogram_quantile(0.99, sum by (service, le) "
                         "(rate(http_request_duration_seconds_bucket[5m])))",
            },
            {
                "name": "in_flight",
                "kind": "saturation",
                "query": "sum by (service) (http_requests_in_flight)",
            },
        ],
    },
    # AWS through CloudWatch: prometheus/cloudwatch_exporter or YACE (both name metrics
    # aws_<namespace>_<metric>_<statistic>). The nested label_replace gives both exporters'
    # identifiers (cloudwatch_exporter `dbinstance_identifier`/`instance_id`, YACE
    # `dimension_DBInstanceIdentifier`/`dimension_InstanceId`) one entity label, `resource`.
    "cloud": {
        "entity_labels": ["resource"],
        "signals": [
            {
                "name": "rds_cpu",
                "kind": "saturation",
                "capacity": 1.0,
                "query": f"max by (resource) ({_rds('aws_rds_cpuutilization_average')}) / 100",
            },
            {
                "name": "rds_cpu_credits",
                "kind": "resource",
                "direction": "down",
                "query": f"min by (resource) ({_rds('aws_rds_cpucredit_balance_average')})",
            },
            {
                "name": "rds_free_storage",
                "kind": "resource",
                "direction": "down",
                "query": f"min by (resource) ({_rds('aws_rds_free_storage_space_average')})",
            },
            {
                "name": "rds_connections",
                "kind": "saturation",
                "query": f"max by (resource) ({_rds('aws_rds_database_connections_average')})",
            },
            {
                "name": "rds_replica_lag",
                "kind": "latency",
                "query": f"max by (resource) ({_rds('aws_rds_replica_lag_average')})",
            },
            {
                "name": "ec2_cpu",
                "kind": "saturation",
                "capacity": 1.0,
                "query": f"max by (resource) ({_ec2('aws_ec2_cpuutilization_average')}) / 100",
            },
            {
                "name": "ec2_status_check_failed",
                "kind": "errors",
                "query": f"max by (resource) ({_ec2('aws_ec2_status_check_failed_maximum')})",
            },
        ],
    },
}
