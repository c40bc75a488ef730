"""The largest network of the capacity family that fits each board (issues 4 and 7).

The block RAM model (:func:`spikeforge.boards.resources.memory_model`) gives the largest
:func:`~.networks.capacity_network` for a device's block RAMs; place and route of that network
in :class:`~.top.BenchTop` confirms it, and corrects it where the model is off by a block.
"""

import os
import tempfile
import time

from ..boards.build import BuildError, build
from ..boards.registry import BOARDS, get_board
from ..boards.resources import RAM_FAMILIES, device_blocks, memory_model, spram_blocks
from ..gen.compile import compile_network
from ..hdl.spram import SPRAM_COUNT
from .networks import CAPACITY_INPUTS, capacity_network
from .timing import timed
from .top import BenchTop

__all__ = [
    "CAPACITY_BOARDS",
    "SPRAM_MIN_LANES",
    "largest_fit",
    "largest_spram_fit",
    "measure_capacity",
]

# The boards whose capacity a full run confirms by building (one per device family; the
# iCESugar has the iCEBreaker's device).
CAPACITY_BOARDS = ("icebreaker", "ulx3s-85f", "tangnano9k")

# The fewest lanes of the SPRAM figure: one lane's 8-bit weight fills half of a 16-bit SPRAM
# word, two lanes fill it (spikeforge.hdl.spram), which doubles the weights the SPRAMs hold.
SPRAM_MIN_LANES = 2


def _largest(fits, limit):
    """The largest ``n`` in [1, ``limit``] with ``fits(n)`` (0 if not even 1 fits), for a
    ``fits`` that only turns false as ``n`` grows: a binary search."""
    if not fits(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def largest_fit(budget, lanes, family, limit=1 << 16):
    """The largest neuron count of :func:`capacity_network` whose modelled block RAMs are at
    most ``budget`` (0 when not even one neuron fits).

    A binary search: the memories only grow with the neuron count.
    """

    def fits(n):
        return memory_model(compile_network(capacity_network(n), lanes), family)[0] <= budget

    return _largest(fits, limit)


def largest_spram_fit(budget, lanes, limit=1 << 16):
    """The largest neuron count of :func:`capacity_network` on an iCE40 UltraPlus with the
    weights in its SPRAMs: the weights fit the four SPRAMs and the other memories of the array
    fit ``budget`` block RAMs (both only grow with the neuron count: a binary search)."""

    def fits(n):
        plan = compile_network(capacity_network(n), lanes)
        return (
            spram_blocks(plan) <= SPRAM_COUNT
            and memory_model(plan, "ice40", runtime_weights=True)[0] <= budget
        )

    return _largest(fits, limit)


def measure_capacity(
    boards=None, confirm=(), lanes=1, stages=4, attempts=3, build_root=None, log=print
):
    """The largest :func:`capacity_network` for every board's device, from the memory model,
    confirmed by place and route on the ``confirm`` boards.

    The model's ``N`` is the largest whose array memories (:func:`memory_model`) fit the
    device's block RAMs. A confirming build is the bare array in :class:`BenchTop`; when it does
    not fit, the block budget drops by one and the new ``N`` is built; when it fits but uses
    fewer block RAMs than modelled, the budget rises by the difference and a larger ``N`` is
    tried; at most ``attempts`` builds per board. The largest ``N`` that built is the result.

    Returns
    -------
    list of dict
        Per board: board, device, family, lanes, inputs, ``model`` (neurons, synapses, blocks,
        blocks_available, memories) and, for a confirmed board, ``attempts`` (every build) and
        ``confirmed`` (the largest that built, with its report figures), or None if none did.
        An iCE40 UltraPlus board also has ``spram``: the same with the weights in SPRAM, on
        ``max(lanes, 2)`` lanes (:data:`SPRAM_MIN_LANES`; :func:`largest_spram_fit`; ``lanes``,
        ``model`` with ``sprams``, and for a confirmed board the report figures of its one
        build, ``confirmed``, or its ``error``).
    """
    boards = list(BOARDS) if boards is None else list(boards)
    root = build_root or os.path.join(tempfile.gettempdir(), "spikeforge-bench-capacity")
    results = []
    for board_name in boards:
        board = get_board(board_name)
        available = device_blocks(board.device)
        n = largest_fit(available, lanes, board.family)
        blocks, memories = memory_model(compile_network(capacity_network(n), lanes), board.family)
        entry = {
            "board": board.name,
            "device": board.device,
            "family": board.family,
            "lanes": lanes,
            "stages": stages,
            "inputs": CAPACITY_INPUTS,
            "model": {
                "neurons": n,
                "synapses": CAPACITY_INPUTS * n,
                "blocks": blocks,
                "blocks_available": available,
                "memories": memories,
            },
        }
        log(
            f"capacity {board.name}: model {n} neurons, {CAPACITY_INPUTS * n} synapses, "
            f"{blocks}/{available} block RAMs"
        )
        if board.name in confirm:
            entry["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            entry["attempts"], entry["confirmed"] = _confirm_capacity(
                board, n, available, lanes, stages, attempts, root, log
            )
        if board.device.startswith("iCE40UP"):
            entry["spram"] = _spram_capacity(
                board, available, lanes, stages, root, board.name in confirm, log
            )
        results.append(entry)
    return results


def _confirm_capacity(board, n, budget, lanes, stages, attempts, root, log):
    """Build ``n`` neurons on ``board``, then the model's ``N`` for a corrected block budget, at
    most ``attempts`` times; return (every attempt, the largest that built or None)."""
    tried, best = [], None
    for _ in range(attempts):
        if n < 1 or any(t["neurons"] == n for t in tried):
            break
        plan = compile_network(capacity_network(n), lanes)
        predicted = memory_model(plan, board.family)[0]
        attempt = {"neurons": n, "synapses": CAPACITY_INPUTS * n, "model_blocks": predicted}
        tried.append(attempt)
        build_dir = os.path.join(root, f"{board.name}-n{n}-p{lanes}-s{stages}")
        try:
            report, spread = timed(
                1, build, BenchTop(board, plan, stages), board, build_dir, check_timing=False
            )
        except BuildError as error:
            attempt.update(fitted=False, error=str(error))
            log(f"capacity {board.name}: {n} neurons do not build: {error}")
            budget = predicted - 1
        else:
            attempt.update(fitted=True, build_s=spread["median"])
            for key in ("luts", "luts_available", "ffs", "brams", "fmax_mhz"):
                attempt[key] = report[key]
            attempt["brams_available"] = report["utilization"].get(
                RAM_FAMILIES[board.family].cell, [None, None]
            )[1]
            log(
                f"capacity {board.name}: {n} neurons built: {report['luts']} LUTs, "
                f"{report['brams']} block RAMs (model {predicted}) in {spread['median']:.0f} s"
            )
            if best is None or n > best["neurons"]:
                best = attempt
            if report["brams"] >= predicted:
                break
            # The model over-counted (a memory went to logic or LUT RAM): more may fit.
            budget += predicted - report["brams"]
        n = largest_fit(budget, lanes, board.family)
    return tried, best


def _spram_capacity(board, available, lanes, stages, root, confirm, log):
    """The ``spram`` entry of an iCE40 UltraPlus board on ``max(lanes, SPRAM_MIN_LANES)`` lanes:
    the model with the weights in SPRAM and, when ``confirm``, the report figures of one build
    of it (or its error)."""
    lanes = max(lanes, SPRAM_MIN_LANES)
    n = largest_spram_fit(available, lanes)
    plan = compile_network(capacity_network(n), lanes)
    blocks, memories = memory_model(plan, board.family, runtime_weights=True)
    entry = {
        "lanes": lanes,
        "model": {
            "neurons": n,
            "synapses": CAPACITY_INPUTS * n,
            "blocks": blocks,
            "blocks_available": available,
            "sprams": spram_blocks(plan),
            "memories": memories,
        },
    }
    log(
        f"capacity {board.name} (SPRAM weights, P = {lanes}): model {n} neurons, "
        f"{CAPACITY_INPUTS * n} synapses, {blocks}/{available} block RAMs, "
        f"{entry['model']['sprams']} SPRAMs"
    )
    if not confirm:
        return entry
    build_dir = os.path.join(root, f"{board.name}-spram-n{n}-p{lanes}-s{stages}")
    top = BenchTop(board, plan, stages, runtime_weights=True)
    try:
        report, spread = timed(1, build, top, board, build_dir, check_timing=False)
    except BuildError as error:
        entry["error"] = str(error)
        log(f"capacity {board.name} (SPRAM weights): {n} neurons do not build: {error}")
        return entry
    entry["confirmed"] = {
        "neurons": n,
        "synapses": CAPACITY_INPUTS * n,
        "build_s": spread["median"],
    }
    for key in ("luts", "luts_available", "ffs", "brams", "sprams", "fmax_mhz"):
        entry["confirmed"][key] = report[key]
    log(
        f"capacity {board.name} (SPRAM weights): {n} neurons built: {report['luts']} LUTs, "
        f"{report['brams']} block RAMs (model {blocks}), {report['sprams']} SPRAMs in "
        f"{spread['median']:.0f} s"
    )
    return entry
