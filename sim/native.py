"""The native ``verilator`` back-end: the array's Verilog and a C++ testbench in one program.

:func:`run_array_native` compiles the array's Verilog with the testbench ``native_array.cpp``
(package data) through :func:`~.native_build.native_binary`, cached by content, and runs the
whole batch in one process with no Python per cycle. Python and the program exchange two files
of little-endian int64 words:

- input: a header (:data:`_HEADER`, in that order), the ``cfg`` writes (``mem, lane, addr`` and
  the data in ``ceil(data_width / 64)`` words, low word first), then per batch element and step
  the number of input events and their indices;
- output: ``n_spikes, n_traces, lanes``, the spikes as ``(run, step, population, index)`` rows,
  the traces as ``(run, step, population, row, mask, v_0 ... v_{lanes-1})`` rows, and the
  cycles of every step, ``(B, T)``.

The testbench drives the ports as the cocotb test :mod:`.cocotb_array` does; its back-pressure
comes from its own seeded generator, so with ``out_stall`` the stall pattern (and so the cycle
counts, never the spikes) differ from the other back-ends'.
"""

import importlib.resources
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..gen.compile import compile_network, runtime_writes
from ..gen.output import ARRAY_TOP, array_source, convert
from ..gen.spike_io import NetworkRun
from ..hdl.array import NeuronArray
from ..spec.errors import SpikeforgeError
from .array_amaranth import as_batch, max_wait_cycles
from .native_build import WAVE_FORMATS, native_binary
from .rtl import RTLSimulationError

__all__ = [
    "HARNESS",
    "NativeArray",
    "array_program",
    "run_array_native",
    "waves_format",
    "parse_steps",
]

HARNESS = "native_array.cpp"
_MAGIC = 0x53464E41
_HEADER = (
    "magic",
    "batch",
    "steps",
    "writes",
    "seed",
    "stall",
    "max_wait",
    "pop_width",
    "index_width",
    "row_width",
    "lanes",
    "v_width",
    "in_index_width",
    "cfg_addr_width",
    "cfg_data_width",
    "waves_from",
    "waves_to",
)
# Amaranth's Verilog leaves out unreachable cases of its state machines.
_VERILATOR_ARGS = ("-Wno-CASEINCOMPLETE",)
_EXIT_STUCK = 3


def waves_format(path):
    """The waveform format of file ``path`` from its suffix, ``"fst"`` or ``"vcd"``.

    Raises
    ------
    SpikeforgeError
        Another suffix.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in WAVE_FORMATS:
        raise SpikeforgeError(f"a waveform file must end in .fst or .vcd, not {str(path)!r}")
    return suffix


def parse_steps(text):
    """``"A:B"`` as the window ``(A, B)`` of timesteps A to B-1.

    Raises
    ------
    SpikeforgeError
        Not two integers with ``0 <= A < B``.
    """
    parts = str(text).split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) >= int(parts[1]):
        raise SpikeforgeError(f"--waves-steps must be A:B with integers 0 <= A < B, not {text!r}")
    return int(parts[0]), int(parts[1])


def _design(net, lanes, stages, trace, runtime_weights):
    """Verilog of the array and the array it was generated from."""
    if not runtime_weights:
        return array_source(net, lanes=lanes, stages=stages, trace=trace)
    plan = compile_network(net, lanes)
    array = NeuronArray(plan, stages=stages, trace=trace, runtime_weights=True)
    header = [
        ("network", plan.network_hash),
        ("lanes", lanes),
        ("stages", stages),
        ("trace", trace),
        ("weights", "runtime (cfg)"),
    ]
    return convert(array, name=ARRAY_TOP, parameters=header), array


def array_program(verilog, trace, waves=None):
    """The native program of the array ``verilog`` (built once, then from the cache).

    ``trace``: the array has ``trace_out``; ``waves``: ``"fst"``, ``"vcd"`` or None.
    """
    harness = importlib.resources.files(__package__).joinpath(HARNESS).read_text("utf-8")
    cflags = ["-DSPIKEFORGE_TRACE"] if trace else []
    if waves is not None:
        cflags.append(f"-DSPIKEFORGE_WAVES_{waves.upper()}")
    return native_binary(
        "native_array",
        {f"{ARRAY_TOP}.v": verilog, HARNESS: harness},
        ARRAY_TOP,
        verilator_args=_VERILATOR_ARGS,
        cflags=cflags,
        waves=waves,
    )


def _event_words(inputs):
    """Per (element, step) of ``inputs`` (B, T, n_in): the event count, then the indices."""
    flat = inputs.reshape(-1, inputs.shape[-1])
    counts = np.count_nonzero(flat, axis=1)
    _, indices = np.nonzero(flat)
    words = np.empty(len(counts) + len(indices), np.int64)
    # A step's count comes after the counts and events of the steps before it.
    at = np.arange(len(counts)) + np.concatenate([[0], np.cumsum(counts)[:-1]])
    is_count = np.zeros(len(words), bool)
    is_count[at] = True
    words[is_count] = counts
    words[~is_count] = indices
    return words


def _write_words(array, writes):
    """The ``cfg`` writes as words: ``mem, lane, addr`` and the data, 64 bits a word."""
    data_words = -(-array.cfg_data_width // 64)
    words = []
    for mem, lane, addr, data in writes:
        words += [int(mem), lane, addr]
        words += [(data >> (64 * n)) & ((1 << 64) - 1) for n in range(data_words)]
    # Data words are unsigned; stored as the int64 of the same bits.
    return np.array(words, np.uint64).view(np.int64)


def _input_words(array, inputs, writes, out_stall, seed, window):
    """The words of the input file."""
    plan = array.plan
    fields = {
        "magic": _MAGIC,
        "batch": inputs.shape[0],
        "steps": inputs.shape[1],
        "writes": len(writes),
        "seed": seed,
        "stall": round(out_stall * (1 << 32)),
        "max_wait": max_wait_cycles(plan, array.stages, out_stall),
        "pop_width": array.pop_width,
        "index_width": array.index_width,
        "row_width": array.row_width,
        "lanes": plan.lanes,
        "v_width": plan.v_width,
        "in_index_width": len(array.spike_in.payload.index),
        "cfg_addr_width": array.cfg_addr_width,
        "cfg_data_width": array.cfg_data_width,
        "waves_from": window[0],
        "waves_to": window[1],
    }
    header = np.array([fields[name] for name in _HEADER], np.int64)
    return np.concatenate([header, _write_words(array, writes), _event_words(inputs)])


def _check_exit(result):
    """Raise RTLSimulationError for a failed run (its last line of output says why)."""
    if result.returncode:
        text = (result.stderr + result.stdout).strip().splitlines()
        lines = text or [f"exit status {result.returncode}"]
        what = "stopped answering" if result.returncode == _EXIT_STUCK else "failed"
        raise RTLSimulationError(f"the native simulation {what}: {lines[-1]}")


def _decode(plan, words, shape, trace):
    """The output file's ``words`` as spikes, traces and cycles of every batch element."""
    batch, steps = shape
    n_spikes, n_traces, lanes = (int(x) for x in words[:3])
    at = 3 + 4 * n_spikes
    events = words[3:at].reshape(-1, 4)
    rows = words[at : at + n_traces * (5 + lanes)].reshape(-1, 5 + lanes)
    cycles = words[at + n_traces * (5 + lanes) :].reshape(batch, steps)
    lif = [p for p in plan.populations if not p.is_input]
    spikes = {p.name: np.zeros((batch, steps, p.size), np.uint8) for p in lif}
    v = {p.name: np.zeros((batch, steps, p.size), np.int64) for p in lif} if trace else {}
    expected = np.zeros(len(events), bool)
    for k, pop in enumerate(plan.populations):
        if pop.is_input:
            continue
        mine = events[(events[:, 2] == k) & (events[:, 3] < pop.size)]
        flat = (mine[:, 0] * steps + mine[:, 1]) * pop.size + mine[:, 3]
        # A neuron spikes at most once a step: a repeated event is as wrong as a foreign one.
        first = np.zeros(len(flat), bool)
        first[np.unique(flat, return_index=True)[1]] = True
        spikes[pop.name].reshape(-1)[flat[first]] = 1
        expected[np.flatnonzero((events[:, 2] == k) & (events[:, 3] < pop.size))[first]] = True
        if trace:
            for lane in range(lanes):
                sel = (rows[:, 2] == k) & (rows[:, 4] >> lane & 1 == 1)
                r = rows[sel]
                v[pop.name][r[:, 0], r[:, 1], pop.neuron(r[:, 3] * lanes + lane)] = r[:, 5 + lane]
    errors = [
        f"step {t}: unexpected spike event ({population}, {index})"
        for _, t, population, index in events[~expected][:5].tolist()
    ]
    if errors:
        raise AssertionError("; ".join(errors))
    return spikes, v, cycles


class NativeArray:
    """The native program of one array, built (or found in the cache) once and run on batches.

    Parameters
    ----------
    net : Network
    lanes, stages : int
        Array configuration.
    trace : bool
        The array has ``trace_out``: runs record membrane traces.
    runtime_weights : bool
        Build the array with runtime weights and load them through ``cfg`` at the start of every
        run, as :func:`~.array_amaranth.run_array_amaranth` does.
    waves : path, optional
        Every run writes the waveforms of every signal to this ``.fst`` or ``.vcd`` file.

    Attributes
    ----------
    verilog : str
        The array's Verilog (that of ``spikeforge.gen.output.array_source`` without runtime
        weights).
    program : pathlib.Path

    Raises
    ------
    ToolError
        Verilator or the C++ compiler failed.
    """

    def __init__(self, net, *, lanes=1, stages=4, trace=False, runtime_weights=False, waves=None):
        fmt = None if waves is None else waves_format(waves)
        self.net = net
        self.trace = trace
        self.waves = None if waves is None else Path(waves).absolute()
        self.verilog, self.array = _design(net, lanes, stages, trace, runtime_weights)
        self.writes = (
            list(runtime_writes(self.array.plan, ("weights",), self.array.weight_burst))
            if runtime_weights
            else []
        )
        self.program = self._program(fmt)

    def _program(self, fmt):
        """Build the simulator program of waveform format ``fmt``; its path."""
        return array_program(self.verilog, self.trace, fmt)

    def _simulate(self, words, folder):
        """Run the program on the input ``words`` in ``folder``; the output file's words."""
        in_path, out_path = folder / "in.bin", folder / "out.bin"
        words.astype("<i8").tofile(in_path)
        command = [str(self.program), str(in_path), str(out_path)]
        if self.waves is not None:
            command.append(str(self.waves))
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        _check_exit(result)
        return np.fromfile(out_path, "<i8")

    def run(self, spikes, *, out_stall=0.0, seed=0, waves_steps=None):
        """Run ``spikes`` (``(T, n_in)`` or ``(B, T, n_in)``), the batch in one process.

        Parameters
        ----------
        out_stall : float
            Probability in [0, 1) that the output consumers hold ``ready`` low in a cycle.
        seed : int
            Seed of the back-pressure pattern.
        waves_steps : (int, int), optional
            Dump only from the start of step ``A`` to the start of step ``B``, counting the
            steps of the whole batch (element ``b``'s step ``t`` is ``b * T + t``); the reset
            belongs to step 0.

        Returns
        -------
        NetworkRun
            With ``cycles`` per timestep.

        Raises
        ------
        RTLSimulationError
            The program failed, or the design stopped answering.
        """
        inputs, batched = as_batch(spikes, self.net)
        if isinstance(out_stall, bool) or not (
            isinstance(out_stall, (int, float)) and 0 <= out_stall < 1
        ):
            raise TypeError(f"out_stall must be a number in [0, 1), not {out_stall!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TypeError(f"seed must be a non-negative integer, not {seed!r}")
        window = (0, 1 << 62) if waves_steps is None else tuple(waves_steps)
        if not (
            len(window) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in window)
            and 0 <= window[0] < window[1]
        ):
            raise TypeError(f"waves_steps must be (A, B) with 0 <= A < B, not {waves_steps!r}")
        words = _input_words(self.array, inputs, self.writes, out_stall, seed, window)
        with tempfile.TemporaryDirectory(prefix="spikeforge-native-") as tmp:
            words = self._simulate(words, Path(tmp))
        out, v, cycles = _decode(self.array.plan, words, inputs.shape[:2], self.trace)
        if not batched:
            out = {name: s[0] for name, s in out.items()}
            v = {name: x[0] for name, x in v.items()}
            cycles = cycles[0]
        return NetworkRun(spikes=out, v=v, cycles=cycles)


def run_array_native(
    net,
    spikes,
    trace=False,
    *,
    lanes=1,
    stages=4,
    out_stall=0.0,
    seed=0,
    runtime_weights=False,
    waves=None,
    waves_steps=None,
):
    """Run ``net`` on the array's Verilog compiled natively with Verilator.

    The arguments are those of :class:`NativeArray` and :meth:`NativeArray.run`.

    Returns
    -------
    NetworkRun
        With ``cycles`` per timestep.
    """
    native = NativeArray(
        net, lanes=lanes, stages=stages, trace=trace, runtime_weights=runtime_weights, waves=waves
    )
    return native.run(spikes, out_stall=out_stall, seed=seed, waves_steps=waves_steps)
