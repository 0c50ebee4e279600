"""Where `make test` spends its time: seconds per test folder and the slowest tests, read from
the JUnit report every run writes (test-artifacts/junit.xml).

    make test
    .venv/bin/python benchmarks/suite_times.py [test-artifacts/junit.xml] [--slowest 15]
    .venv/bin/python benchmarks/suite_times.py --write-slow tests/slow_tests.txt --over 0.5

`--write-slow` lists the tests that took longer than `--over` seconds; tests/conftest.py marks
them `slow`, so that `make test-fast` leaves them out.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import click


def case_seconds(report: Path) -> list[tuple[str, float]]:
    """(test id, seconds: setup, call and teardown together) of every test case in the report."""
    cases = ET.parse(report).getroot().iter("testcase")
    return [(f"{case.get('classname', '')}::{case.get('name', '')}", float(case.get("time", 0)))
            for case in cases]


def node_id(test_id: str) -> str:
    """tests.lab.test_cli::name -> tests/lab/test_cli.py::name (pytest's node id)."""
    module, _, name = test_id.partition("::")
    return f"{module.replace('.', '/')}.py::{name}"


def folder_of(test_id: str) -> str:
    """tests.lab.test_cli::name -> tests/lab."""
    module = test_id.split("::")[0].split(".")
    return "/".join(module[:2]) if len(module) > 2 else module[0]


@click.command()
@click.argument("report", default="test-artifacts/junit.xml",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slowest", default=15, show_default=True, help="How many single tests to list.")
@click.option("--write-slow", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the node ids of the tests slower than --over to this file.")
@click.option("--over", default=0.5, show_default=True, help="Seconds that make a test slow.")
def main(report: Path, slowest: int, write_slow: Path | None, over: float) -> None:
    """Print a Markdown table of seconds per folder, then the slowest tests."""
    times = case_seconds(report)
    if write_slow is not None:
        slow = sorted(node_id(t) for t, seconds in times if seconds > over)
        write_slow.write_text(f"# tests over {over} s in {report} (benchmarks/suite_times.py)\n"
                              + "".join(f"{t}\n" for t in slow))
        click.echo(f"{len(slow)} tests over {over} s written to {write_slow}")
    folders: dict[str, list[float]] = defaultdict(list)
    for test_id, seconds in times:
        folders[folder_of(test_id)].append(seconds)
    total = sum(seconds for _, seconds in times)
    click.echo("| folder | tests | seconds | share |\n|---|---|---|---|")
    for folder, values in sorted(folders.items(), key=lambda item: -sum(item[1])):
        click.echo(f"| {folder} | {len(values)} | {sum(values):.0f} | "
                   f"{sum(values) / total:.0%} |")
    click.echo(f"| all | {len(times)} | {total:.0f} | 100% |\n")
    click.echo("| slowest tests | seconds |\n|---|---|")
    for test_id, seconds in sorted(times, key=lambda item: -item[1])[:slowest]:
        click.echo(f"| {test_id} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
