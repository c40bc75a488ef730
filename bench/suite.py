"""The performance suite of ``docs/performance.md``: runs the chosen parts, one module each."""

import time

from ..spec.errors import SpikeforgeError
from .brian import brian_comparison
from .builds import measure_builds
from .capacity import CAPACITY_BOARDS, measure_capacity
from .conv import measure_conv
from .cycles import measure_cycles
from .results import PARTS, derive_throughput, machine_info
from .speed import SPEED_BACKENDS, measure_speeds

__all__ = ["run_suite"]


def run_suite(
    parts=PARTS,
    quick=False,
    boards=None,
    repeat=3,
    lanes=(1, 2, 4),
    backend="amaranth",
    speed_backends=SPEED_BACKENDS,
    speed_lanes=2,
    demo=None,
    log=print,
):
    """Run the chosen ``parts`` of the suite; returns the results dict of ``bench/results.json``.

    ``backend`` measures the cycles; ``speed_backends`` are timed on ``speed_lanes`` lanes.
    ``demo`` (the demo's network and spikes, ``spikeforge.cli.demo.demo_workload``) adds the
    goals of the native Verilator harness to the speed part.
    ``boards`` are built by the build part and confirm the capacity part's model (default: the
    build part on ulx3s-85f and tangnano9k, the capacity part on
    :data:`~.capacity.CAPACITY_BOARDS`; quick: icebreaker for both).
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SpikeforgeError(f"bench parts must be among {', '.join(PARTS)}, not {unknown[0]!r}")
    confirm = boards
    if boards is None:
        boards = ["icebreaker"] if quick else ["ulx3s-85f", "tangnano9k"]
        confirm = ["icebreaker"] if quick else list(CAPACITY_BOARDS)
    results = {
        "quick": quick,
        "repeat": repeat,
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if "cycles" in parts:
        results["cycles"] = measure_cycles(quick, lanes, backend=backend, log=log)
    if "speed" in parts:
        results["speed"] = measure_speeds(
            quick, repeat, speed_backends, speed_lanes, demo=demo, log=log
        )
    if "build" in parts:
        results["build"] = measure_builds(boards, quick, lanes, log=log)
    if "capacity" in parts:
        results["capacity"] = measure_capacity(confirm=confirm, log=log)
    if "brian2" in parts:
        results["brian2"] = brian_comparison(
            steps=100 if quick else 1000, repeat=repeat, batch=4 if quick else 64, log=log
        )
    if "conv" in parts:
        # Quick mode only checks that the part runs: one short batch.
        results["conv"] = (
            measure_conv(steps=20, batches=1, log=log)
            if quick
            else measure_conv(batches=repeat, log=log)
        )
    derive_throughput(results)
    return results
