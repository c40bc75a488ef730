"""The installed spikeforge version, for headers and reports."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

__all__ = ["version"]


def version():
    """Version of the installed ``spikeforge`` distribution."""
    try:
        return _dist_version("spikeforge")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
