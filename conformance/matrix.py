"""The compatibility matrix: one row per test (feature area, test, result).

`MatrixCollector` is a pytest plugin object: handed to `pytest.main(plugins=...)`
it records each test's area (the test module's ``AREA`` constant) and outcome,
then renders the matrix as plain text or Markdown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

#: The results a row can have, in the order summaries list them.
RESULTS = ("pass", "fail", "xfail", "skip")


@dataclass
class Row:
    area: str
    test: str
    result: str = "skip"
    detail: str = "not run"  # replaced once the test reports


def _short_name(item: pytest.Item) -> str:
    module = item.path.stem if item.path else ""
    return f"{module}::{item.name}"


class MatrixCollector:
    """Records (area, test, result) for every collected test."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    # -- pytest hooks -------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            module = getattr(item, "module", None)
            area = getattr(module, "AREA", None) or (item.path.stem if item.path else "?")
            self.rows[item.nodeid] = Row(area=area, test=_short_name(item))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.get(report.nodeid)
        if row is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            row.result = _result_of(report)
            row.detail = ""
            if row.result == "xfail":
                row.detail = str(getattr(report, "wasxfail", ""))
            elif row.result == "skip" and isinstance(report.longrepr, tuple):
                row.detail = str(report.longrepr[2])
        elif report.when == "teardown" and report.failed:
            row.result = "fail"

    # -- rendering ------------------------------------------------------------

    def counts(self) -> Counter[str]:
        return Counter(row.result for row in self.rows.values())

    def summary_line(self) -> str:
        counts = self.counts()
        return ", ".join(f"{counts[r]} {r}" for r in RESULTS) + f" ({len(self.rows)} tests)"

    def by_area(self) -> dict[str, Counter[str]]:
        areas: dict[str, Counter[str]] = {}
        for row in self.ordered():
            areas.setdefault(row.area, Counter())[row.result] += 1
        return areas

    def ordered(self) -> list[Row]:
        """Rows grouped by area, areas and tests in collection order."""
        first_seen: dict[str, int] = {}
        for index, row in enumerate(self.rows.values()):
            first_seen.setdefault(row.area, index)
        return sorted(self.rows.values(), key=lambda r: first_seen[r.area])

    def as_text(self) -> str:
        rows = self.ordered()
        area_width = max([len("area"), *(len(r.area) for r in rows)])
        test_width = max([len("test"), *(len(r.test) for r in rows)])
        lines = [f"{'area':<{area_width}}  {'test':<{test_width}}  result"]
        lines.append(f"{'-' * area_width}  {'-' * test_width}  ------")
        for row in rows:
            lines.append(f"{row.area:<{area_width}}  {row.test:<{test_width}}  {row.result}")
        return "\n".join(lines)

    def as_markdown(self, title: str, broker: str) -> str:
        lines = [f"# {title}", "", f"Broker: {broker}", "", f"Result: {self.summary_line()}", ""]
        lines += ["## By area", "", "| area | " + " | ".join(RESULTS) + " |"]
        lines.append("|---" * (len(RESULTS) + 1) + "|")
        for area, counts in self.by_area().items():
            lines.append(f"| {area} | " + " | ".join(str(counts[r]) for r in RESULTS) + " |")
        lines += ["", "## Every test", "", "| area | test | result | note |", "|---|---|---|---|"]
        for row in self.ordered():
            note = row.detail.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {row.area} | `{row.test}` | {row.result} | {note} |")
        return "\n".join(lines) + "\n"


def _result_of(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        # A strict xfail that passed is reported failed by pytest itself.
        return "xfail" if report.skipped else ("fail" if report.failed else "pass")
    if report.passed:
        return "pass"
    if report.skipped:
        return "skip"
    return "fail"
