import re
from pathlib import Path

from exporter import catalog

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_table_matches_catalog():
    text = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- metrics-table:begin[^>]*-->\n(.*?)\n<!-- metrics-table:end -->",
                      text, re.S)
    assert table, "README lost its metrics table markers"
    assert table.group(1) == catalog.markdown_table(), "regenerate: python -c 'from exporter " \
        "import catalog; print(catalog.markdown_table())'"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test.sh" in readme and "scripts/demo.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()


def test_every_flag_of_run_is_documented():
    from exporter.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    run = build_parser("run")._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    for action in run._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt not in ("--help",):
                assert f"`{opt}`" in readme or opt in readme, f"{opt} missing from README"
