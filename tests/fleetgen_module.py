"""benchmarks/fleetgen.py (the independent evaluation fleet generator) as a module, for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_fleetgen() -> ModuleType:
    """The generator module, loaded once from its file (benchmarks/ is not a package)."""
    if "fleetgen" in sys.modules:
        return sys.modules["fleetgen"]
    spec = importlib.util.spec_from_file_location("fleetgen", ROOT / "benchmarks" / "fleetgen.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fleetgen"] = mod
    spec.loader.exec_module(mod)
    return mod
