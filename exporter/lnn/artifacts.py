"""Model directories: `model.pt` (a state dict of tensors, nothing else) + `model.yaml` (the card).

Loading never unpickles code: `torch.load(..., weights_only=True)` refuses anything but tensors
and plain containers, the file's sha256 must match the card, and the card's inputs and horizons
must match what this version of the feature code produces.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from exporter.lnn.features import FEATURE_DOCS, FEATURE_NAMES, TOKENS
from exporter.util import atomic_write

if TYPE_CHECKING:
    from exporter.lnn.network import FailureNet

log = logging.getLogger(__name__)

WEIGHTS = "model.pt"
CARD = "model.yaml"


class ModelError(Exception):
    """A model directory cannot be used; the message says why."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (the card's `sha256` of `model.pt`); OSError as raised."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model_dir: str | Path, net: FailureNet, card: dict[str, Any]) -> dict[str, Any]:
    """Write the state dict and the card (sha256, inputs, horizons and network filled in)."""
    import io

    import torch

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    # 0644: a shipped model is read by other users too (atomic_write's default).
    atomic_write(model_dir / WEIGHTS, buf.getvalue())
    card = dict(card)
    card["inputs"] = list(FEATURE_NAMES)
    card["input_meanings"] = {name: FEATURE_DOCS[name] for name in FEATURE_NAMES}
    card["tokens"] = TOKENS
    card["horizons_seconds"] = [float(h) for h in net.spec.horizons]
    card["network"] = net.spec.to_dict()
    card["temperature"] = [round(1.0 / float(s), 6) for s in net.calib_scale.tolist()]
    card["calibration_bias"] = [round(float(b), 6) for b in net.calib_bias.tolist()]
    card["sha256"] = sha256_file(model_dir / WEIGHTS)
    text = yaml.safe_dump(card, sort_keys=False, default_flow_style=None, width=100)
    atomic_write(model_dir / CARD, text.encode())
    return card


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """The parsed `model.yaml`; ModelError when missing or malformed."""
    path = Path(model_dir) / CARD
    try:
        card = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ModelError(f"{path}: cannot read model card: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ModelError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(card, dict):
        raise ModelError(f"{path}: model card is not a mapping")
    for key in ("name", "version", "inputs", "horizons_seconds", "network", "sha256"):
        if key not in card:
            raise ModelError(f"{path}: model card lacks {key!r}")
    card["trained_for"] = trained_for(card, path)
    return card


# What `aura train` uses unless its config says otherwise (AnalysisConfig's defaults).
TRAINED_WINDOW_SECONDS = 7200.0
TRAINED_STEP_SECONDS = 60.0


def trained_for(card: dict[str, Any], path: Path | str = CARD) -> dict[str, tuple[float, float]]:
    """The analysis window and step (seconds, inclusive [min, max]) the model can be used with.

    Read from the card's `trained_for: {window: [min, max], step: [min, max]}` when present;
    else the single window and step it was trained with (`training.analysis`), else the
    defaults `aura train` uses (2h, 1m). The features are normalised over the window's first
    half and pooled from its last steps, so another window or step shows the network inputs
    it never saw. Raise ModelError when the card's values are malformed.
    """
    from exporter.config import parse_duration

    def seconds(value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return parse_duration(value)
        raise TypeError(f"{value!r} is not a duration")

    training = card.get("training")
    training = training if isinstance(training, dict) else {}
    analysis = training.get("analysis")
    analysis = analysis if isinstance(analysis, dict) else {}
    given = card.get("trained_for") or {}
    out: dict[str, tuple[float, float]] = {}
    for key, default in (("window", TRAINED_WINDOW_SECONDS), ("step", TRAINED_STEP_SECONDS)):
        try:
            single = seconds(analysis.get(key, default))
            bounds = given.get(key, [single, single]) if isinstance(given, dict) else None
            lo, hi = (seconds(b) for b in bounds)  # type: ignore[union-attr]
        except (TypeError, ValueError) as err:
            raise ModelError(f"{path}: bad trained_for/training.analysis {key}: {err}") from err
        if not 0 < lo <= hi:
            raise ModelError(f"{path}: trained_for.{key} must be 0 < min <= max")
        out[key] = (lo, hi)
    return out


def incompatibility(card: dict[str, Any], window: float, step: float) -> str | None:
    """Why an analysis with this window and step (seconds) cannot use the model, or None."""
    from exporter.config import format_duration

    ranges = card.get("trained_for") or trained_for(card)
    problems = []
    for key, value in (("window", window), ("step", step)):
        lo, hi = ranges[key]
        if not lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
            span = format_duration(lo) if lo == hi else f"{format_duration(lo)}..{format_duration(hi)}"
            problems.append(f"{key} {format_duration(value)} (trained for {span})")
    return ", ".join(problems) or None


def load_model(model_dir: str | Path) -> tuple[FailureNet, dict[str, Any]]:
    """Load and verify a model directory; raise ModelError with the reason when unusable."""
    import pickle

    import torch

    from exporter.lnn.network import NetworkSpec, build

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file missing")
    actual = sha256_file(weights)
    if actual != card["sha256"]:
        raise ModelError(
            f"{weights}: sha256 {actual} does not match the card's {card['sha256']} "
            "(file changed or corrupted)"
        )
    if list(card["inputs"]) != list(FEATURE_NAMES):
        raise ModelError(
            f"{model_dir}: model inputs {card['inputs']} differ from this version's features "
            f"{list(FEATURE_NAMES)}; retrain with `aura train`"
        )
    if card.get("topology_inputs", False) is not False:
        # Inputs 16-21 are always 0 now (lnn.features): a model that learned weights for them
        # would read "no topology" on every window and forecast something it was not fitted to.
        raise ModelError(
            f"{model_dir}: the card says topology_inputs: {card['topology_inputs']!r}, but "
            "this version feeds the model no topology inputs (not shown to improve held-out "
            "or out-of-distribution scores, README \"Design notes\"); retrain with `aura train`"
        )
    if int(card.get("tokens", TOKENS)) != TOKENS:
        raise ModelError(f"{model_dir}: model expects {card['tokens']} tokens, features give "
                         f"{TOKENS}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        raise ModelError(
            f"{weights}: refused: not a plain state dict of tensors ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]})"
        ) from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{weights}: refused: expected a dict of tensors (a state dict)")
    try:
        spec = NetworkSpec.from_dict(card["network"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{model_dir}: bad 'network' section in the card: {err}") from err
    if spec.n_inputs != len(FEATURE_NAMES):
        raise ModelError(f"{model_dir}: network has {spec.n_inputs} inputs, features give "
                         f"{len(FEATURE_NAMES)}")
    if [float(h) for h in card["horizons_seconds"]] != list(spec.horizons):
        raise ModelError(f"{model_dir}: card horizons disagree with the network section")
    net = build(spec)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(f"{weights}: state dict does not fit the network: "
                         f"{str(err).splitlines()[0][:300]}") from err
    saved_h = [round(float(h), 3) for h in state["horizons"]]
    if saved_h != [round(h, 3) for h in spec.horizons]:
        raise ModelError(f"{weights}: stored horizons {saved_h} differ from the card's")
    net.eval()
    log.info("model loaded path=%s name=%s version=%s", model_dir, card["name"], card["version"])
    return net, card
