"""The failure network: an ncps CfC cell on an AutoNCP wiring, a hazard head and a ttf head.

Imported only by `exporter.lnn.predictor`, `exporter.lnn.artifacts` and `exporter.lnn.trainer`,
which are themselves imported lazily, so torch is never paid for by `aura check-config`.

Shape of the model (ncps style: the wiring is built apart from the cell, and `CfC` loops the
one-step cell over time for the whole batch of entities at once):

    inputs [B, T, F] -> CfC(AutoNCP(units, motor)) -> motor neurons of the last step [B, M]
      -> hazard head: softplus(Linear(M, H)) = lambda_k >= 0, the hazard of interval k
         cumulative hazard L_k = sum_{j<=k} lambda_j, P(fail <= h_k) = 1 - exp(-L_k)
         (monotone along the horizons by construction)
      -> ttf head: Linear(M, 1) = log(ttf / largest horizon) for windows that fail in range.

Calibration (fitted on validation data, stored as buffers in the state dict) is a per-horizon
temperature and bias on the logit of P, followed by a running maximum over the horizons so the
calibrated curve stays monotone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild the module before loading a state dict."""

    n_inputs: int
    horizons: tuple[float, ...]
    units: int = 24
    motor: int = 8
    sparsity: float = 0.5
    wiring_seed: int = 22222

    def to_dict(self) -> dict[str, object]:
        """The spec as the card's `network` mapping (horizons as float seconds)."""
        d = asdict(self)
        d["horizons"] = [float(h) for h in self.horizons]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> NetworkSpec:
        """Inverse of `to_dict`; KeyError/ValueError/TypeError for a card missing or mangling a key."""
        return cls(
            n_inputs=int(d["n_inputs"]),  # type: ignore[call-overload]
            horizons=tuple(float(h) for h in d["horizons"]),  # type: ignore[attr-defined]
            units=int(d.get("units", 24)),  # type: ignore[call-overload]
            motor=int(d.get("motor", 8)),  # type: ignore[call-overload]
            sparsity=float(d.get("sparsity", 0.5)),  # type: ignore[arg-type]
            wiring_seed=int(d.get("wiring_seed", 22222)),  # type: ignore[call-overload]
        )


class FailureNet(nn.Module):
    """CfC + AutoNCP with a monotone hazard head and a time-to-failure head."""

    horizons: torch.Tensor
    calib_scale: torch.Tensor
    calib_bias: torch.Tensor

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        from ncps.torch import CfC
        from ncps.wirings import AutoNCP

        self.spec = spec
        wiring = AutoNCP(spec.units, spec.motor, sparsity_level=spec.sparsity,
                         seed=spec.wiring_seed)
        self.rnn = CfC(spec.n_inputs, wiring, return_sequences=False, batch_first=True)
        n_h = len(spec.horizons)
        self.hazard = nn.Linear(spec.motor, n_h)
        self.ttf = nn.Linear(spec.motor, 1)
        # Start with a small hazard so untrained outputs sit near the base rate, not 0.5.
        nn.init.constant_(self.hazard.bias, -3.0)
        self.register_buffer("horizons", torch.tensor(spec.horizons, dtype=torch.float32))
        self.register_buffer("calib_scale", torch.ones(n_h))
        self.register_buffer("calib_bias", torch.zeros(n_h))

    def cumulative_hazard(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cumulative hazard [B, H] and log(ttf / largest horizon) [B] (uncalibrated)."""
        motor, _ = self.rnn(x)
        lam = nn.functional.softplus(self.hazard(motor)) + 1e-6
        return torch.cumsum(lam, dim=-1), self.ttf(motor).squeeze(-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated P(fail <= h) [B, H] and ttf in seconds [B]."""
        cum, log_ttf = self.cumulative_hazard(x)
        p = -torch.expm1(-cum)
        p = p.clamp(1e-6, 1 - 1e-6)
        logit = torch.log(p) - torch.log1p(-p)
        p = torch.sigmoid(logit * self.calib_scale + self.calib_bias)
        p = torch.cummax(p, dim=-1).values
        ttf = torch.exp(log_ttf) * self.horizons[-1]
        return p, ttf


def hazard_loss(cum: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted binary cross entropy of P = 1 - exp(-cum), computed stably from the hazard."""
    log_p = torch.log(-torch.expm1(-cum.clamp(min=1e-6)))
    log_q = -cum
    ll = y * log_p + (1 - y) * log_q
    return -(ll.mean(dim=-1) * w).sum() / w.sum().clamp(min=1e-12)


def build(spec: NetworkSpec, seed: int | None = None) -> FailureNet:
    """A fresh network; `seed` makes its initial weights reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return FailureNet(spec)
