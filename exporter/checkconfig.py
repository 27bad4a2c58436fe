"""`aura check-config FILE`: validate a configuration and name every bad key path.

With `--csv` it validates as `aura backtest/train --input` read the config: signal queries may
be left out (a CSV's columns are the signals).

Besides the keys themselves it checks what the config points at and would only fail later:
the failure model (`model.path`) must exist and have been trained for every analysis' window
and step; otherwise `aura run` would start with a forecast that abstains. And every PromQL
expression the config holds (each signal's `query`, `rules.selector`) must parse, or the source
would answer bad_data every cycle: Prometheus' own parser checks them, through
`promtool check rules` on a temporary rule file (a subprocess: this is a command, never a
request path). Without promtool on PATH the PromQL is not checked, and the output says so.
A resource rising towards a limit without `capacity` is a note (`unprojectable_resources`):
valid, but nothing can project its exhaustion.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from exporter.config import (
    UNPROJECTABLE_ADVICE,
    Config,
    ConfigError,
    format_duration,
    load_config,
    unprojectable_resources,
)

# One `promtool check rules` run for all expressions takes ~50 ms; a hung promtool must not
# hang check-config.
PROMTOOL_TIMEOUT = 30.0
PROMTOOL_MISSING = "PromQL not checked: promtool not found; install the prometheus package"
# `r.yml: 5:15: group "aura_check", rule 1, "aura_check_0": could not parse expression: <err>`
_RULE_ERROR = re.compile(r'"aura_check_(\d+)": (?:could not parse expression: )?(.*)$')
# An expression a newer Prometheus may accept (histogram_avg, ...): a note, not a problem.
_UNKNOWN_FUNCTION = "unknown function with name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `check-config`'s one argument, the YAML file, to `parser`: positional as the
    contract says, or `--config.file` like every other command."""
    parser.add_argument("file", nargs="?", help="configuration file (YAML)")
    parser.add_argument("--config.file", dest="config_file", metavar="FILE",
                        help="the same, as the other commands take it")
    parser.add_argument("--csv", action="store_true",
                        help="validate as `aura backtest/train --input=FILE` read it: a CSV's "
                             "columns are the signals, so their queries may be left out")


def model_problems(cfg: Config) -> list[str]:
    """Problems of `model.path` for this config: missing/unreadable card, untrained window."""
    from exporter.lnn.artifacts import ModelError, incompatibility, read_card

    try:
        card = read_card(cfg.model.path)
    except ModelError as err:
        return [f"model.path: {err} (the forecast would abstain)"]
    problems = []
    for i, a in enumerate(cfg.analyses):
        why = incompatibility(card, float(a.window), float(a.step))
        if why is not None:
            problems.append(
                f"analyses[{i}].window: analysis {a.name!r} (window "
                f"{format_duration(a.window)}, step {format_duration(a.step)}) cannot use the "
                f"failure model {card['name']} {card['version']}: {why}; the forecast would "
                "abstain. Use the trained window and step, or train a model for yours "
                "(aura train)."
            )
    return problems


def promql_expressions(cfg: Config) -> list[tuple[str, str]]:
    """(key path, PromQL) for every expression of `cfg` that reaches Prometheus, as it is sent.

    Signal queries go to `query_range` verbatim (exporter/source/prometheus.py), preset
    signals included (user signals come first, so their indices match the file);
    `rules.selector` is label matchers that `aura generate rules` puts inside `metric{...}`,
    checked as `up{<selector>}`.
    """
    exprs = [(f"analyses[{i}].signals[{j}].query", s.query)
             for i, a in enumerate(cfg.analyses) for j, s in enumerate(a.signals) if s.query]
    selector = cfg.rules.selector.strip().strip(",")
    if selector:
        exprs.append(("rules.selector", f"up{{{selector}}}"))
    return exprs


def _promtool_check(promtool: str, exprs: list[str]) -> tuple[int, str, dict[int, str]]:
    """`promtool check rules` on one recording rule `aura_check_<n>` per expression:
    (exit status, output, {n: promtool's error for expression n})."""
    rules = [{"record": f"aura_check_{n}", "expr": e} for n, e in enumerate(exprs)]
    with tempfile.TemporaryDirectory(prefix="aura-check-") as tmp:
        path = Path(tmp) / "promql.rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "aura_check", "rules": rules}]},
                                       allow_unicode=True, sort_keys=False, width=1 << 30),
                        encoding="utf-8")
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                              text=True, errors="replace", stdin=subprocess.DEVNULL,
                              timeout=PROMTOOL_TIMEOUT, check=False)
    output = proc.stdout + proc.stderr
    errors: dict[int, str] = {}
    for line in output.splitlines():
        m = _RULE_ERROR.search(line)
        if m is not None and int(m.group(1)) < len(exprs):
            errors.setdefault(int(m.group(1)), m.group(2).strip())
    return proc.returncode, output, errors


def _promtool_version(promtool: str) -> str:
    """`promtool 2.42.0+ds`, or `promtool` when it does not say."""
    try:
        out = subprocess.run([promtool, "--version"], capture_output=True, text=True,
                             errors="replace", stdin=subprocess.DEVNULL, timeout=PROMTOOL_TIMEOUT,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return "promtool"
    m = re.search(r"version (\S+)", out.stdout + out.stderr)
    return f"promtool {m.group(1)}" if m else "promtool"


def promql_problems(cfg: Config) -> tuple[list[str], list[str]]:
    """(problems, notes) of the PromQL in `cfg` (`promql_expressions`), by promtool.

    A problem is `<key path>: <promtool's parse error>`. Notes do not fail the check: PromQL not
    checked (promtool missing, failing or hung), or a function this promtool does not know but
    a newer Prometheus may (the source's own answer decides). One promtool run checks every
    expression; should its output not name the rules, each expression is checked alone.
    """
    exprs = promql_expressions(cfg)
    if not exprs:
        return [], []
    promtool = shutil.which("promtool")
    if promtool is None:
        return [], [PROMTOOL_MISSING]
    try:
        status, output, errors = _promtool_check(promtool, [e for _, e in exprs])
        if status != 0 and not errors:
            for n, (_, expr) in enumerate(exprs):
                alone_status, alone_output, alone = _promtool_check(promtool, [expr])
                if alone_status != 0:
                    lines = [line.strip() for line in alone_output.splitlines() if line.strip()]
                    errors[n] = alone.get(0) or (lines[-1] if lines else f"exit {alone_status}")
    except subprocess.TimeoutExpired:
        return [], [f"PromQL not checked: promtool did not finish in {PROMTOOL_TIMEOUT:g}s"]
    except OSError as err:
        return [], [f"PromQL not checked: cannot run {promtool}: {err.strerror or err}"]
    if status != 0 and not errors:
        tail = " ".join(output.split())[-300:]
        return [], [f"PromQL not checked: promtool check rules failed (exit {status}): {tail}"]
    problems, notes = [], []
    version = None
    for n, (key, expr) in enumerate(exprs):
        if n not in errors:
            continue
        where = f" (checked as {expr})" if key == "rules.selector" else ""
        if _UNKNOWN_FUNCTION in errors[n]:
            version = version or _promtool_version(promtool)
            notes.append(f"{key}: {errors[n]}{where} ({version} does not know it; a newer "
                         "Prometheus may: not counted as a problem)")
        else:
            problems.append(f"{key}: {errors[n]}{where}")
    return problems, notes


def run(args: argparse.Namespace) -> int:
    """Validate `args.file`: 0 and a `SUCCESS` line on stdout, or 1 and every problem on stderr.

    A problem is a bad key path (`ConfigError.problems`, from `load_config`) or, for a config
    that loads, one of `model_problems` or `promql_problems`; nothing is raised for a bad file.
    Notes (PromQL not checked, ...) go to stderr and do not fail the check.
    """
    if args.file is None:
        args.file = args.config_file
    elif args.config_file is not None and args.config_file != args.file:
        print("check-config: give the file once (FILE or --config.file)", file=sys.stderr)
        return 2
    if args.file is None:
        print("check-config: the configuration file is required (FILE or --config.file)",
              file=sys.stderr)
        return 2
    notes: list[str] = []
    csv_only = bool(getattr(args, "csv", False))
    try:
        cfg = load_config(args.file, require_queries=not csv_only)
    except ConfigError as err:
        problems = err.problems
        if not csv_only and any(p.endswith(".query: required key missing") for p in problems):
            notes.append("a config read only from CSV files (`aura backtest --input`) may leave "
                         "the queries out: check it with --csv")
    else:
        problems, notes = promql_problems(cfg)
        problems = model_problems(cfg) + problems
        notes += [f"{key} ({name}): {UNPROJECTABLE_ADVICE}"
                  for key, _, name in unprojectable_resources(cfg)]
    for note in notes:  # advice, not a problem: labelled so, and not counted as one
        print(f"{args.file}: note: {note}", file=sys.stderr)
    if problems:
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        also = f" (and {len(notes)} note(s))" if notes else ""
        print(f"FAILED: {len(problems)} problem(s){also}", file=sys.stderr)
        return 1
    signals = sum(len(a.signals) for a in cfg.analyses)
    print(f"SUCCESS: {args.file}: {len(cfg.analyses)} analyses, {signals} signals")
    return 0
