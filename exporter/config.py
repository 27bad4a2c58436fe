"""YAML configuration -> frozen dataclasses with defaults; every error names its key path.

The schema *is* the dataclasses below: field types drive parsing (durations, nested sections,
lists, literals), `__post_init__`-free validation lives in `_validate_*` hooks, and unknown keys
are refused. `aura.example.yml` documents every key and a test keeps it loadable.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from exporter.util import format_duration, parse_duration


class ConfigError(ValueError):
    """A configuration problem; `str()` is `path: problem` lines, one per problem.

    `file`, when given, is the config file a whole-file problem (unreadable, not UTF-8,
    invalid YAML) is about: `str()` names it, `problems` do not, because the commands that
    list `problems` already put the file name in front of each one.
    """

    def __init__(self, problems: list[str], *, file: str | Path | None = None):
        self.problems = problems
        self.file = None if file is None else str(file)
        prefix = f"{self.file}: " if self.file is not None else ""
        super().__init__("\n".join(prefix + p for p in problems))


class Duration(float):
    """Seconds, parsed from Prometheus duration strings such as `30s`, `1h30m`, `2d`."""


# --------------------------------------------------------------------------------------------
# Schema


SIGNAL_KINDS = ("resource", "latency", "errors", "network", "saturation", "other")
AGENT_NAMES = ("topology", "forecast", "capacity", "network", "stability")


@dataclass(frozen=True)
class Authorization:
    """`authorization`: an HTTP `Authorization: <type> <credentials>` header, the credentials
    read from `credentials_file` on every request (secrets only via files)."""

    type: str = "Bearer"
    credentials_file: str | None = None


@dataclass(frozen=True)
class BasicAuth:
    """`basic_auth`: HTTP basic authentication, the password read from `password_file`."""

    username: str = ""
    password_file: str | None = None


@dataclass(frozen=True)
class TLSConfig:
    """`tls_config`: CA bundle, client certificate and key files, server name (SNI) and
    `insecure_skip_verify`, as in Prometheus' `tls_config`."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class OAuth2:
    """`oauth2`: client-credentials grant (RFC 6749 section 4.4) against `token_url`, the
    secret read from `client_secret_file`; tokens are renewed before they expire."""

    client_id: str = ""
    client_secret_file: str | None = None
    token_url: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpClientConfig:
    """An HTTP API that AURA calls: URL, request timeout, credentials and TLS.

    The keys are Prometheus' own `http_config` keys (`authorization`, `basic_auth`,
    `tls_config`), so a scrape or remote-read block can be copied in. Validated by
    `_validate_http_client`: an http(s) URL, a timeout > 0, at most one of `basic_auth` and
    `authorization`. Subclasses set their own defaults and add their keys.
    """

    url: str = ""
    timeout: Duration = Duration(30)
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    tls_config: TLSConfig = TLSConfig()


@dataclass(frozen=True)
class SourceConfig(HttpClientConfig):
    """Where PromQL goes: any Prometheus-compatible query API (Prometheus, Thanos, Mimir)."""

    url: str = "http://127.0.0.1:9090"
    oauth2: OAuth2 | None = None
    max_concurrency: int = 4
    retries: int = 2
    # Late samples: incremental fetches re-read this much before the last fetched step.
    overlap: Duration = Duration(120)


@dataclass(frozen=True)
class SignalConfig:
    """`analyses[i].signals[j]`: one PromQL query returning one series per entity.

    name: column / `signal` label ([a-zA-Z_][a-zA-Z0-9_]*, unique in the analysis).
    capacity: the level at which the resource is exhausted, in the query's units (> 0), or
    None; kind: what the signal measures (SIGNAL_KINDS); direction: which way is bad.
    """

    name: str
    query: str = ""
    capacity: float | None = None
    kind: Literal["resource", "latency", "errors", "network", "saturation", "other"] = "other"
    # Which direction is bad: "up" (usage, latency, errors) or "down" (free space, credits).
    direction: Literal["up", "down"] = "up"


@dataclass(frozen=True)
class TopologyConfig:
    """`analyses[i].topology`: delay embedding, Rips cloud sizes and the healthy-baseline
    reservoir of the topology stage (exporter.tda). Counts are points or windows, durations
    seconds; `max_points` and `score_points` must be >= 2."""

    embedding_dimension: int = 1
    embedding_delay: int = 1
    # Points per Rips cloud; longer windows are pooled (means of consecutive steps). PH costs
    # ~N^2: 60 is ~4-5x cheaper than 120 (exporter/tda/embedding.py).
    max_points: int = 60
    # Points of the coarse cloud the anomaly score compares with the baseline: means of
    # window/score_points consecutive steps (10 min at the defaults). Averaging removes the
    # step-to-step noise that dominated distances between 60-point clouds, so the score sees
    # where the entity's state sits and moves (exporter/tda/baseline.py).
    score_points: int = 12
    # 72 windows admitted every 20 min: the reservoir spans a day (daily patterns); see
    # exporter/tda/baseline.py for the measurements.
    baseline_size: int = 72
    baseline_every: Duration = Duration(1800)
    # exporter.tda: fewer finite points than this -> no diagram (NaN, "unknown").
    min_points: int = 8
    # Add the baseline centre as one point so level shifts show in the (translation-invariant)
    # Rips diagram; see exporter/tda/embedding.py.
    anchor: bool = True
    # A healthy window joins the baseline reservoir at most this often, and only while its
    # calibrated 30-min average anomaly (the sustained form's average) is <=
    # baseline_admit_quantile.
    baseline_admit_every: Duration = Duration(1200)
    baseline_admit_quantile: float = 0.9
    # Cold start (no saved baselines): replay this much source history through the topology
    # stage on the first cycle, so baselines span a day and anomaly scores are calibrated from
    # the first cycle instead of ~5 h later (and over-eager for a further ~12 h). Skipped above
    # bootstrap_max_entities: it costs one pass per admitted window (72 for a day) over the
    # score clouds only: ~4 s per 100 entities for a day (benchmarks/README.md).
    bootstrap: Duration = Duration(86400)
    bootstrap_max_entities: int = 500


@dataclass(frozen=True)
class AnalysisConfig:
    """`analyses[i]`: one set of entities analysed together.

    name: the `analysis` label (a simple name, unique); entity_labels: the labels that
    identify an entity, copied verbatim to outputs; window / step: seconds (at least 8
    steps per window); horizons: seconds of the failure probabilities; max_entities: the
    cardinality guard; signals and topology: see SignalConfig and TopologyConfig.
    """

    name: str
    preset: str | None = None
    entity_labels: tuple[str, ...] = ("instance",)
    window: Duration = Duration(7200)
    step: Duration = Duration(60)
    horizons: tuple[Duration, ...] = (Duration(3600), Duration(7200), Duration(14400))
    max_entities: int = 5000
    signals: tuple[SignalConfig, ...] = ()
    topology: TopologyConfig = TopologyConfig()

    @property
    def steps(self) -> int:
        """Samples per entity window."""
        return int(round(self.window / self.step))


@dataclass(frozen=True)
class AgentConfig:
    """`agents.<name>`: whether the agent votes and the weight (>= 0) of its vote."""

    enabled: bool = True
    weight: float = 1.0


@dataclass(frozen=True)
class ConsensusConfig:
    """`agents.consensus`: risk levels of warning and critical (0 < warning <= critical <=
    1), the ballots an entity needs (>= 1) and the confidence a vote needs to be a ballot."""

    warning_risk: float = 0.5
    critical_risk: float = 0.8
    # Below this many ballots an entity's risk is reported as undecided, never healthy.
    min_voters: int = 1
    # A vote is a ballot (counted by the consensus) only with at least this confidence.
    min_confidence: float = 0.6
    # Agents whose support alone never makes a level: an agent that sees a failure mechanism
    # (capacity: a resource running out; network: errors/latency degrading) must agree at
    # that level (warning_risk for a warning, critical_risk for critical). The learned forecast's probabilities do not transfer to fleets it
    # was not trained on; stability's evidence (restarts, scrape gaps, jitter, error bursts)
    # is what deploys, cron restarts and scrape trouble also show. Measured on 9 evaluation
    # sources: their solo alerts were 1 true, 11 false; see exporter/consensus.py.
    corroborate: tuple[str, ...] = ("forecast", "stability")


@dataclass(frozen=True)
class DecisionConfig:
    """Self-calibrating alert decisions (exporter.decision): a level counts only when rare."""

    enabled: bool = True
    # Alerts per entity-day that benign behaviour may spend; sets the reference quantile.
    alert_budget: float = 0.05
    # How much of each entity's own past risk the reference holds, and at what resolution.
    reference: Duration = Duration(3 * 86400)
    sample_every: Duration = Duration(600)
    # The newest span left out of the reference (0: the analysis' largest horizon), so a
    # developing failure is compared with the days before it, not with its own precursor.
    exclude_recent: Duration = Duration(0)
    # Own history needed before the entity's own reference applies: one full daily cycle, so
    # a nightly backup or a daily batch job has been seen once before it is judged.
    min_reference: Duration = Duration(86400)
    # History each of at least 3 entities needs before the fleet's reference applies.
    fleet_min_reference: Duration = Duration(3600)
    # Until the entity's own reference applies (a cold start, a new pod), a level also needs
    # at least this risk.
    cold_threshold: float = 0.8
    # A sustained, extreme anomaly is a warning even where no agent sees a failure mechanism
    # (servers without known capacities; an incident that is "unusual", not "filling up"):
    # the calibrated topology anomaly score's sustained form (its 30-min average and drift, not
    # the exported onset: TopologyResult.sustained_score) at or above `sustained_anomaly_threshold` (0.998: rarer
    # than 1 in 500 of the entity's own windows) at every cycle for `sustained_anomaly_for`, once the
    # entity's own history spans `sustained_anomaly_min_history` (the score compares a window with the
    # same time of day from the second day on; a day of those comparisons calibrates it), and,
    # where the failure model forecasts for the entity, once it gave a failure within its
    # largest horizon at least exporter.decision.CORROBORATE_FORECAST during the run. A run
    # that comes with a restart (a signal resetting like a counter, exporter.windows) is not
    # raised. 1 turns it off.
    sustained_anomaly_threshold: float = 0.998
    sustained_anomaly_for: Duration = Duration(1800)
    sustained_anomaly_min_history: Duration = Duration(2 * 86400)
    # Fleet-wide events (exporter.decision, `fleet_wide_needed`): where more entities of the
    # analysis reached a level within `fleet_wide_window` than independent alerts would
    # (a binomial tail below `fleet_wide_alpha` at twice the budget's rate), the cause is
    # shared (a traffic surge, a deploy wave, a dependency, a scrape problem), not each
    # entity's own failure: their levels are held at 0 and say so. 0 turns it off.
    fleet_wide_alpha: float = 1e-4
    fleet_wide_window: Duration = Duration(1800)
    # Symptoms of another entity's failure (exporter.cascade): an entity at a level whose
    # leading signal (kind errors or latency) moves step by step with another entity's same
    # signal over the window (first differences correlated at least `symptom_correlation`),
    # where the other's rise is at least `symptom_rise_ratio` times its own, is a caller
    # seeing a dependency's failure: held at 0, and says so. 0 turns it off.
    symptom_correlation: float = 0.9
    symptom_rise_ratio: float = 1.2


@dataclass(frozen=True)
class AgentsConfig:
    """`agents`: one AgentConfig per agent of AGENT_NAMES, the consensus and the decision
    stage; at least `consensus.min_voters` agents must be enabled."""

    topology: AgentConfig = AgentConfig()
    forecast: AgentConfig = AgentConfig()
    # Capacity projections are physical evidence (a robust, consistent trend reaching a
    # configured limit): they outweigh a model that is blind at long horizons.
    capacity: AgentConfig = AgentConfig(weight=3.0)
    network: AgentConfig = AgentConfig()
    stability: AgentConfig = AgentConfig()
    consensus: ConsensusConfig = ConsensusConfig()
    decision: DecisionConfig = DecisionConfig()


@dataclass(frozen=True)
class ExpositionConfig:
    """`exposition`: detail series for every entity (`full`) or only the `top_k_details`
    riskiest (`summary`, >= 0)."""

    detail: Literal["summary", "full"] = "summary"
    top_k_details: int = 50


@dataclass(frozen=True)
class ModelConfig:
    """`model`: the failure model directory (`aura train` output); missing or incompatible,
    the forecast abstains."""

    path: str = "models/default"


@dataclass(frozen=True)
class RulesConfig:
    """Thresholds and `for:` durations of the generated alert rules (and backtest alerts)."""

    failure_predicted_for: Duration = Duration(600)
    failure_risk_for: Duration = Duration(900)
    # `keep_firing_for` of the failure alerts (AuraFailurePredicted, AuraFailureRisk;
    # Prometheus >= 2.42): a firing alert whose level dips below its bar for less than this
    # stays the same alert instead of resolving and paging again when it returns. 0 leaves
    # the field out.
    keep_firing_for: Duration = Duration(900)
    topology_anomaly_threshold: float = 0.95
    topology_anomaly_for: Duration = Duration(1800)
    selector: str = ""
    runbook_url: str = "https://github.com/aura-exporter/aura/blob/main/docs/runbooks/{alertname}.md"
    # Meta alerts (AuraDown, AuraSourceDown, AuraCycleStalled, AuraModelAbstaining,
    # AuraSignalNoData) wait this long; AuraCycleSlow waits cycle_slow_for.
    meta_for: Duration = Duration(300)
    cycle_slow_for: Duration = Duration(900)
    # AuraCycleStalled: no successful cycle for this many intervals.
    stalled_intervals: float = 3.0


@dataclass(frozen=True)
class IncidentsConfig:
    """Alertmanager alert names recorded as real incidents by `POST /api/v1/alerts`."""

    alertnames: tuple[str, ...] = ("NodeDown", "KubePodCrashLooping", "TargetDown", "InstanceDown")
    max_payload_bytes: int = 1_048_576


@dataclass(frozen=True)
class AlertmanagerConfig(HttpClientConfig):
    """An Alertmanager whose live alerts and silences the console's alerts page shows."""

    timeout: Duration = Duration(10)


@dataclass(frozen=True)
class Config:
    """The whole configuration file (`parse_config`, `load_config`): every key has a default;
    durations are seconds; `stale_after` defaults to 3 intervals (`stale_seconds`)."""

    source: SourceConfig = SourceConfig()
    interval: Duration = Duration(60)
    # Results older than this are dropped from /metrics rather than served as current.
    stale_after: Duration | None = None
    state_dir: str | None = None
    analyses: tuple[AnalysisConfig, ...] = ()
    agents: AgentsConfig = AgentsConfig()
    exposition: ExpositionConfig = ExpositionConfig()
    model: ModelConfig = ModelConfig()
    rules: RulesConfig = RulesConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    alertmanager: AlertmanagerConfig | None = None

    @property
    def stale_seconds(self) -> float:
        """Seconds after which an analysis' last good result leaves /metrics."""
        return float(self.stale_after) if self.stale_after is not None else 3 * float(self.interval)

    def analysis(self, name: str | None = None) -> AnalysisConfig:
        """The analysis called `name` (the first when None)."""
        if not self.analyses:
            raise ConfigError(["analyses: no analysis configured"])
        if name is None:
            return self.analyses[0]
        for a in self.analyses:
            if a.name == name:
                return a
        raise ConfigError([f"analyses: no analysis named {name!r}"])


# --------------------------------------------------------------------------------------------
# Generic loader


def _type_name(tp: Any) -> str:
    if tp is Duration:
        return "a duration (e.g. 30s, 2h)"
    if tp in (int, float):
        return "a number" if tp is float else "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))


def _parse_value(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _parse_value(args[0], value, path, problems)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append(f"{path}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if origin is tuple:
        item_tp = typing.get_args(tp)[0]
        if isinstance(value, str | int | float) and item_tp is str:
            value = [value]
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return ()
        return tuple(_parse_value(item_tp, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, path, problems)
    if tp is Duration:
        return _parse_duration_value(value, path, problems)
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true or false, got {value!r}")
        return bool(value)
    if tp in (int, float):
        number = _as_number(value)
        if isinstance(number, float) and tp is int and not number.is_integer():
            number = None
        if number is not None:
            try:
                return tp(number)
            except OverflowError:  # an int beyond float's range: not a finite float
                number = None
        finite = tp is float and isinstance(value, int | float) and not isinstance(value, bool)
        what = "a finite number" if finite else _type_name(tp)  # .nan, .inf, 10**400
        hint = ""
        if path.endswith(".capacity") and isinstance(value, str) \
                and any(c in value for c in "_(/{"):  # a metric name or a query
            # A per-entity limit (RAM, disk size): the presets' way is a ratio.
            hint = ("; one number for every entity: where the limit differs per entity, make "
                    "the query the used share (e.g. 1 - node_memory_MemAvailable_bytes / "
                    "node_memory_MemTotal_bytes) with capacity 1.0")
        problems.append(f"{path}: expected {what}, got {value!r}{hint}")
        return tp(0)
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {value!r}")
            return str(value)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _as_number(value: Any) -> int | float | None:
    """`value` as a finite int or float, numeric strings included; None when it is not one.

    YAML 1.1 (PyYAML) reads `1e15` (no dot, unsigned exponent) as a string, and byte
    capacities are written that way, so a string that `int()` or `float()` reads counts.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _parse_duration_value(value: Any, path: str, problems: list[str]) -> Duration:
    """A Prometheus duration string (`15m`); a bare number is refused, except 0 as Prometheus."""
    if isinstance(value, str) and value.strip() == "0":
        return Duration(0)
    if isinstance(value, str):
        try:
            return Duration(parse_duration(value))
        except ValueError as err:
            problems.append(f"{path}: {err}")
            return Duration(0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return Duration(0)
        # Seconds or minutes? `for: 15` reads both ways, so the unit must be written.
        n = value if isinstance(value, int) and value > 0 else 15
        problems.append(f"{path}: {value!r} has no unit; use a unit, e.g. {n}s or {n}m")
        return Duration(0)
    problems.append(f"{path}: expected {_type_name(Duration)}, got {value!r}")
    return Duration(0)


def _parse_dataclass(cls: Any, data: Any, path: str, problems: list[str]) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(f"{path or '<top>'}: expected a mapping, got {data!r}")
        data = {}
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            problems.append(f"{_join(path, key)}: unknown key (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        sub = _join(path, f.name)
        if f.name in data:
            kwargs[f.name] = _parse_value(hints[f.name], data[f.name], sub, problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{sub}: required key missing")
            kwargs[f.name] = _placeholder(hints[f.name])
    obj = cls(**kwargs)
    hook = _VALIDATORS.get(cls)
    if hook:
        hook(obj, path, problems)
    return obj


def _placeholder(tp: Any) -> Any:
    return "" if tp is str else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _validate_positive(obj: Any, path: str, problems: list[str], *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        already = any(p.startswith(f"{_join(path, name)}:") for p in problems)
        if value is not None and value <= 0 and not already:
            problems.append(f"{_join(path, name)}: must be > 0, got {value!r}")


def _validate_http_client(obj: HttpClientConfig, path: str, problems: list[str]) -> None:
    if not re.match(r"^https?://[^\s/]+", obj.url):
        problems.append(f"{_join(path, 'url')}: expected an http(s) URL, got {obj.url!r}")
    _validate_positive(obj, path, problems, "timeout")
    if obj.basic_auth and obj.authorization:
        problems.append(f"{path}: at most one of basic_auth and authorization")


def _validate_source(obj: SourceConfig, path: str, problems: list[str]) -> None:
    _validate_http_client(obj, path, problems)
    _validate_positive(obj, path, problems, "max_concurrency")
    if obj.retries < 0:
        problems.append(f"{_join(path, 'retries')}: must be >= 0, got {obj.retries}")


def _validate_signal(obj: SignalConfig, path: str, problems: list[str]) -> None:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", obj.name or ""):
        problems.append(f"{_join(path, 'name')}: must match [a-zA-Z_][a-zA-Z0-9_]*, got {obj.name!r}")
    _validate_positive(obj, path, problems, "capacity")


def _validate_analysis(obj: AnalysisConfig, path: str, problems: list[str]) -> None:
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_\-]*", obj.name or ""):
        problems.append(f"{_join(path, 'name')}: must be a simple name, got {obj.name!r}")
    _validate_positive(obj, path, problems, "window", "step", "max_entities")
    for i, h in enumerate(obj.horizons):
        if h <= 0 and not any(p.startswith(f"{path}.horizons[{i}]:") for p in problems):
            problems.append(f"{path}.horizons[{i}]: must be > 0")
    if obj.step > 0 and obj.window > 0 and obj.window / obj.step < 8:
        problems.append(f"{_join(path, 'window')}: must hold at least 8 steps")
    if not obj.entity_labels:
        problems.append(f"{_join(path, 'entity_labels')}: at least one label is needed")
    reserved = {"analysis", "horizon", "dimension", "agent", "signal", "stage", "action"}
    for i, label in enumerate(obj.entity_labels):
        if label in reserved or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label):
            problems.append(f"{path}.entity_labels[{i}]: {label!r} is not a usable label name")
    names = [s.name for s in obj.signals]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append(f"{path}.signals[{i}].name: duplicate signal {name!r}")
    topo = _join(path, "topology")
    for key in ("max_points", "score_points"):
        if getattr(obj.topology, key) < 2:
            problems.append(f"{topo}.{key}: must be >= 2, got {getattr(obj.topology, key)}")


def _validate_consensus(obj: ConsensusConfig, path: str, problems: list[str]) -> None:
    for name in ("warning_risk", "critical_risk"):
        value = getattr(obj, name)
        if not 0 < value <= 1:
            problems.append(f"{_join(path, name)}: must be in (0, 1], got {value}")
    if obj.critical_risk < obj.warning_risk:
        problems.append(f"{_join(path, 'critical_risk')}: must be >= warning_risk")
    if obj.min_voters < 1:
        problems.append(f"{_join(path, 'min_voters')}: must be >= 1")
    if not 0 <= obj.min_confidence <= 1:
        problems.append(f"{_join(path, 'min_confidence')}: must be in [0, 1]")
    unknown = sorted(set(obj.corroborate) - set(AGENT_NAMES))
    if unknown:
        problems.append(f"{_join(path, 'corroborate')}: unknown agents {unknown} "
                        f"(known: {', '.join(AGENT_NAMES)})")


def _validate_agents(obj: AgentsConfig, path: str, problems: list[str]) -> None:
    enabled = [n for n in AGENT_NAMES if getattr(obj, n).enabled]
    for n in AGENT_NAMES:
        if getattr(obj, n).weight < 0:
            problems.append(f"{path}.{n}.weight: must be >= 0")
    # Byzantine tolerance: a level needs 2f+1 agreeing agents among n >= 3f+1 voters.
    if len(enabled) < obj.consensus.min_voters:
        problems.append(
            f"{path}: {len(enabled)} agents enabled but consensus.min_voters is "
            f"{obj.consensus.min_voters}; consensus could never be reached"
        )
    if not 0 < obj.decision.sustained_anomaly_threshold <= 1:
        problems.append(f"{path}.decision.sustained_anomaly_threshold: must be in (0, 1] (1: off), got "
                        f"{obj.decision.sustained_anomaly_threshold}")
    if not 0 <= obj.decision.symptom_correlation <= 1:
        problems.append(f"{path}.decision.symptom_correlation: must be in [0, 1] (0: off), got "
                        f"{obj.decision.symptom_correlation}")
    if not obj.decision.symptom_rise_ratio >= 1:
        problems.append(f"{path}.decision.symptom_rise_ratio: must be at least 1, got "
                        f"{obj.decision.symptom_rise_ratio}")
    if not 0 <= obj.decision.fleet_wide_alpha < 1:
        problems.append(f"{path}.decision.fleet_wide_alpha: must be in [0, 1) (0: off), got "
                        f"{obj.decision.fleet_wide_alpha}")
    if float(obj.decision.fleet_wide_window) <= 0:
        problems.append(f"{path}.decision.fleet_wide_window: must be > 0")
    if enabled and all(n in obj.consensus.corroborate or n == "topology" for n in enabled):
        problems.append(
            f"{path}.consensus.corroborate: every enabled agent needs corroboration "
            f"({', '.join(enabled)}); no level could ever be reached"
        )


def _validate_exposition(obj: ExpositionConfig, path: str, problems: list[str]) -> None:
    if obj.top_k_details < 0:
        problems.append(f"{_join(path, 'top_k_details')}: must be >= 0")


def _validate_config(obj: Config, path: str, problems: list[str]) -> None:
    _validate_positive(obj, path, problems, "interval", "stale_after")
    names = [a.name for a in obj.analyses]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append(f"analyses[{i}].name: duplicate analysis {name!r}")


_VALIDATORS: dict[type, Callable[[Any, str, list[str]], None]] = {
    SourceConfig: _validate_source,
    AlertmanagerConfig: _validate_http_client,
    SignalConfig: _validate_signal,
    AnalysisConfig: _validate_analysis,
    ConsensusConfig: _validate_consensus,
    AgentsConfig: _validate_agents,
    ExpositionConfig: _validate_exposition,
    Config: _validate_config,
}


def _expand_presets(data: Any, problems: list[str]) -> Any:
    """Replace `preset:` signal lists by the preset's signals (user signals override by name)."""
    from exporter.presets import PRESETS

    if not isinstance(data, Mapping) or not isinstance(data.get("analyses"), list):
        return data
    analyses = []
    for i, raw in enumerate(data["analyses"]):
        if isinstance(raw, Mapping) and raw.get("preset") is not None:
            preset = PRESETS.get(raw["preset"]) if isinstance(raw["preset"], str) else None
            if preset is None:
                problems.append(
                    f"analyses[{i}].preset: unknown preset {raw['preset']!r} "
                    f"(known: {', '.join(sorted(PRESETS))})"
                )
            elif raw.get("signals") is not None and not isinstance(raw["signals"], list):
                problems.append(f"analyses[{i}].signals: expected a list")
            else:
                own = list(raw.get("signals") or [])
                own_names = {s.get("name") for s in own
                             if isinstance(s, Mapping) and isinstance(s.get("name"), str)}
                # User signals first so their key paths match the file they wrote.
                merged = own + [s for s in preset["signals"] if s["name"] not in own_names]
                raw = {**{k: v for k, v in preset.items() if k != "signals"}, **raw, "signals": merged}
        analyses.append(raw)
    return {**data, "analyses": analyses}


def parse_config(data: Any, *, require_queries: bool = True) -> Config:
    """Build a Config from parsed YAML; raise ConfigError listing every problem.

    `require_queries=False` accepts signals without `query`, for commands that read CSV
    (backtest, train with --input), where the signal names are the CSV's columns.
    """
    problems: list[str] = []
    data = _expand_presets(data, problems)
    cfg = _parse_dataclass(Config, data, "", problems)
    for i, a in enumerate(cfg.analyses):
        if not a.signals:
            problems.append(f"analyses[{i}].signals: no signals (set a preset or list signals)")
        for j, s in enumerate(a.signals):
            if not s.query and require_queries:
                problems.append(f"analyses[{i}].signals[{j}].query: required key missing")
    if problems:
        raise ConfigError(problems)
    return cfg


# What `unprojectable_resources` advises (check-config's note, the run's and backtest's log).
UNPROJECTABLE_ADVICE = (
    "a resource without capacity: AURA cannot project when it runs out (a leak or a filling "
    "disk is only 'unusual'). Set capacity, or query the used share (used / total, e.g. "
    "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) with capacity: 1, "
    "which also holds where sizes differ per entity")


def unprojectable_resources(cfg: Config) -> list[tuple[str, str, str]]:
    """Signals whose exhaustion nothing can project: (key path, analysis, signal) each.

    A `resource` signal that rises towards a limit (direction "up") without `capacity`: the
    capacity agent (exporter/agents/capacity.py) needs the level at which it runs out (a
    falling one runs out at 0 and needs none), so a leak or a filling disk in bytes is seen
    only as unusual, never as "runs out in 2 h". Not an error: the config is valid and the
    signal still feeds the other stages (UNPROJECTABLE_ADVICE says what to do). A
    `saturation` without one (load per CPU, a throttling ratio) has no hard limit to run
    out of and is not listed.
    """
    return [(f"analyses[{i}].signals[{j}]", a.name, s.name)
            for i, a in enumerate(cfg.analyses) for j, s in enumerate(a.signals)
            if s.kind == "resource" and s.direction == "up" and s.capacity is None]


def load_config(path: str | Path, *, require_queries: bool = True) -> Config:
    """Read and validate a YAML config file (see parse_config for `require_queries`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"cannot read: {err.strerror}"], file=path) from err
    except UnicodeDecodeError as err:
        raise ConfigError([f"not valid UTF-8 (byte {err.start}): {err.reason}"], file=path) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError([_yaml_problem(err, text)], file=path) from err
    cfg = parse_config(data or {}, require_queries=require_queries)
    model_path = resolve_path(cfg.model.path, Path(path).parent)
    if model_path != cfg.model.path:
        cfg = dataclasses.replace(cfg, model=ModelConfig(model_path))
    return cfg


def _yaml_problem(err: yaml.YAMLError, text: str) -> str:
    """`invalid YAML at line L, column C: <problem>` (1-based), without PyYAML's excerpt."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if isinstance(err, yaml.reader.ReaderError):
        # Raised before any token: a position in the text, no mark.
        before = text[: err.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        char = f"#x{err.character:04x}" if isinstance(err.character, int) else repr(err.character)
        return f"invalid YAML at line {line}, column {column}: unacceptable character {char}: {err.reason}"
    if mark is None or not problem:
        lines = [ln for ln in str(err).splitlines() if not ln.strip().startswith("in \"<unicode")]
        return "invalid YAML: " + " ".join(ln.strip() for ln in lines if ln.strip())
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    message = f"invalid YAML at {where}: {problem}"
    if context and context_mark is not None and (context_mark.line, context_mark.column) != (
            mark.line, mark.column):
        message += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    elif context:
        message += f" ({context})"
    return message


def resolve_path(path: str, config_dir: Path) -> str:
    """A relative path from a config file: against the file's directory, then the package.

    The package's project root holds `models/default`, so a config anywhere finds the shipped
    model; a path found in neither place is returned unchanged (relative to the working
    directory, and reported missing by whoever opens it).
    """
    given = Path(path).expanduser()
    if given.is_absolute():
        return str(given)
    for base in (config_dir, Path(__file__).resolve().parent.parent):
        candidate = base / given
        if candidate.exists():
            return str(candidate.resolve())
    return path


def replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace, re-exported so callers need not import dataclasses."""
    return dataclasses.replace(obj, **changes)


__all__ = [
    "Config",
    "ConfigError",
    "AnalysisConfig",
    "SignalConfig",
    "SourceConfig",
    "HttpClientConfig",
    "Duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "format_duration",
]
