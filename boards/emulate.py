"""A virtual board: the board top of ``spikeforge build`` in Verilator, on a pseudo-terminal.

:func:`emulated_design` makes the design that ``spikeforge build`` would flash for a board (the
same :class:`~spikeforge.boards.top.BoardTop`, with the same clock, UART divisor, byte timeout
and weight store), converted to Verilog instead of synthesised: the top's pins become ports of
the module ``board`` through a stand-in platform. :func:`emulator_binary` compiles it with the
C++ harness ``emulate.cpp`` (package data) into a native program, cached by content.
:class:`Emulator` runs that program: it opens a pseudo-terminal, prints its name (``port``),
and serves the board there until it is closed, so that ``spikeforge run --port`` (pyserial, the
driver, the frames) talks to it as to a board on a USB-serial bridge.

Two wirings of the link: bit level (the default), the board top with its UART, the harness
toggling the ``rx`` pin and sampling ``tx`` at the top's real divisor; and byte level
(``byte_level=True``), the top's :class:`~spikeforge.hdl.host_link.HostLink` with the same
parameters but its byte streams driven directly, a byte per clock cycle instead of
``10 * divisor``. Both run the host link's gateware; byte level leaves out the UART and the LEDs.

Faults (``faults``, a rate per byte, ``seed``) are injected on the virtual wire in both
directions: each byte is dropped, has one bit flipped, or is delayed by up to twice the board's
byte timeout, each a third of the time.
"""

import dataclasses
import importlib.resources
import re
import signal
import subprocess
import types

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from ..gen.compile import compile_network
from ..sim.native_build import native_binary
from ..spec.errors import SpikeforgeError, ToolError
from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from .flow import design_clock
from .registry import get_board
from .resources import choose_weights
from .top import BoardTop, check_baud, default_baud

__all__ = ["EmulatedDesign", "Emulator", "emulated_design", "emulator_binary", "parse_window"]

MODULE = "board"
HARNESS = "emulate.cpp"
# Amaranth's Verilog leaves out unreachable cases of a state machine and declares empty vectors
# (a two-entry FIFO's `[-1:0]`): Verilator warns about each (native_build silences the width
# warnings itself).
VERILATOR_ARGS = ("-Wno-CASEINCOMPLETE", "-Wno-ASCRANGE")
# How long `Emulator` waits for the program to say its port, and then to stop.
START_SECONDS = 60
STOP_SECONDS = 10


@dataclasses.dataclass(frozen=True)
class EmulatedDesign:
    """A board design to emulate.

    Attributes
    ----------
    board : Board
    plan : ArrayPlan
    weights : str
        ``bram`` or ``spram`` (:func:`~spikeforge.boards.resources.choose_weights`).
    clock_hz : int
        The ``sync`` clock of the top (the PLL's real output with ``clock``).
    baud : int
    divisor : int
        UART clock cycles per bit.
    timeout : int
        The link's byte timeout in cycles.
    byte_level : bool
    verilog : str
        Module ``board``: ``clk``, ``rst``, ``uart_rx``, ``uart_tx``, the LEDs, and the array's
        ``busy`` and ``start`` (as ``step``) at bit level; ``clk``, ``rst``, ``rx_data``,
        ``rx_valid``, ``rx_ready``, ``tx_data``, ``tx_valid``, ``tx_ready``, ``busy`` and
        ``step`` at byte level.
    """

    board: object
    plan: object
    weights: str
    clock_hz: int
    baud: int
    divisor: int
    timeout: int
    byte_level: bool
    verilog: str

    @property
    def quiet_cycles(self):
        """Cycles without traffic or a running step after which the link is idle: the byte
        timeout (a truncated frame, the flush after an error), then room for the answer."""
        byte_cycles = 1 if self.byte_level else 10 * self.divisor
        return self.timeout + 64 * byte_cycles + 4096

    def describe(self):
        """One line: board, clock, weight store and how the UART is simulated."""
        line = "byte level (no UART)" if self.byte_level else f"bit level, divisor {self.divisor}"
        return (
            f"{self.board.name} at {self.clock_hz / 1e6:g} MHz, weights in {self.weights}, "
            f"{self.plan.lanes} lane{'s' * (self.plan.lanes > 1)}, host link at {self.baud} baud "
            f"({line})"
        )


class _PinPlatform:
    """Stands in for a board's platform: every requested pin is a port of the Verilog module.

    The UART's pins are ``uart_rx`` and ``uart_tx``, the LEDs ``led_0``, ``led_1``, ... (an
    RGB LED one port per colour), whatever the board calls them.
    """

    def __init__(self, board):
        self.board = board

    def request(self, name, number=0, *, dir="-"):
        if (name, number) == tuple(self.board.uart):
            return types.SimpleNamespace(rx=self._port("uart_rx"), tx=self._port("uart_tx"))
        leds = [
            (i, subsignal)
            for i, (resource, n, subsignal) in enumerate(self.board.leds)
            if (resource, n) == (name, number)
        ]
        if leds[0][1] is None:
            return self._port(f"led_{leds[0][0]}")
        return types.SimpleNamespace(**{sub: self._port(f"led_{i}") for i, sub in leds})

    @staticmethod
    def _port(name):
        return io.SingleEndedPort(io.IOPort(1, name=name))


class _Observed(wiring.Component):
    """The board top, with its array's ``busy`` (the harness keeps simulating while the array
    runs) and ``start`` (a step begins: the harness counts steps by it) as outputs."""

    busy: Out(1)
    step: Out(1)

    def __init__(self, top):
        self.top = top
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = self.top
        array = self.top.link.link.array
        m.d.comb += [self.busy.eq(array.busy), self.step.eq(array.start)]
        return m


class _ByteLevel(wiring.Component):
    """A :class:`~spikeforge.hdl.host_link.HostLink` with its byte streams as plain ports (a
    stream's ``rx__valid`` would become ``rx___05Fvalid`` in Verilator's C++)."""

    rx_data: In(8)
    rx_valid: In(1)
    rx_ready: Out(1)
    tx_data: Out(8)
    tx_valid: Out(1)
    tx_ready: In(1)
    busy: Out(1)
    step: Out(1)

    def __init__(self, link):
        self.link = link
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.d.comb += [
            link.rx.payload.eq(self.rx_data),
            link.rx.valid.eq(self.rx_valid),
            self.rx_ready.eq(link.rx.ready),
            self.tx_data.eq(link.tx.payload),
            self.tx_valid.eq(link.tx.valid),
            link.tx.ready.eq(self.tx_ready),
            self.busy.eq(link.array.busy),
            self.step.eq(link.array.start),
        ]
        return m


def emulated_design(
    net,
    board_name,
    *,
    lanes=1,
    stages=4,
    clock=None,
    baud=None,
    weights="auto",
    byte_level=False,
    steps=True,
):
    """The design ``spikeforge build`` would make for ``net`` on ``board_name``, as Verilog.

    The arguments are those of :func:`spikeforge.boards.flow.build_network` (``steps`` among
    them), checked the same way, plus ``byte_level``.

    Raises
    ------
    SpikeforgeError
        Unknown board, a board without a UART, bad lanes, stages, clock, baud or weights.
    """
    board = get_board(board_name)
    check_lanes(lanes, "--lanes", SpikeforgeError)
    check_int("--stages", stages, *STAGES_RANGE, error=SpikeforgeError)
    clock_mhz = design_clock(board, clock)
    baud = default_baud(board, clock_mhz) if baud is None else baud
    check_baud(baud, clock_mhz)
    plan = compile_network(net, lanes)
    weights = choose_weights(plan, board, weights)
    top = BoardTop(
        board,
        plan,
        stages=stages,
        clock_mhz=clock_mhz,
        baud=baud,
        runtime_weights=weights == "spram",
        steps=steps,
    )
    if byte_level:
        # The top's own link, its byte streams as ports; the UART and the LEDs are left out.
        _silence(top)
        text = verilog.convert(_ByteLevel(top.link.link), name=MODULE, emit_src=False)
    else:
        text = verilog.convert(
            _Observed(top), platform=_PinPlatform(board), name=MODULE, emit_src=False
        )
    return EmulatedDesign(
        board=board,
        plan=plan,
        weights=weights,
        clock_hz=top.clock_hz,
        baud=baud,
        divisor=top.link.uart_rx.divisor,
        timeout=top.link.link.timeout,
        byte_level=byte_level,
        verilog=text,
    )


def _silence(top):
    # Only the link of a byte-level top is elaborated: without this Amaranth warns, when the
    # rest is collected, that it was "created but never used".
    for component in (top, top.link, top.link.uart_rx, top.link.uart_tx):
        component._MustUse__silence = True


def emulator_binary(design, waves=None):
    """Compile ``design`` with the harness (cached by content); the program's path.

    ``waves`` is ``"fst"`` or ``"vcd"`` to build in waveform tracing.

    Raises
    ------
    ToolError
        Verilator or the C++ compiler failed.
    """
    harness = importlib.resources.files(__package__).joinpath(HARNESS).read_text("utf-8")
    defines = []
    if design.byte_level:
        defines.append("-DSPIKEFORGE_BYTE_LEVEL")
    if waves is not None:
        defines.append(f"-DSPIKEFORGE_WAVES_{waves.upper()}")
    return native_binary(
        "emulate",
        {f"{MODULE}.v": design.verilog, HARNESS: harness},
        MODULE,
        verilator_args=VERILATOR_ARGS,
        cflags=defines,
        waves=waves,
    )


def parse_window(text):
    """``"A:B"`` (timesteps A to B-1 of the emulator's run) as ``(A, B)``.

    Raises
    ------
    SpikeforgeError
        Not two integers with ``0 <= A < B``.
    """
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match or int(match[1]) >= int(match[2]):
        raise SpikeforgeError(f"--waves-steps must be A:B with integers 0 <= A < B, not {text!r}")
    return int(match[1]), int(match[2])


class Emulator:
    """A running virtual board; use as a context manager, or call :meth:`close`.

    Parameters
    ----------
    design : EmulatedDesign
    faults : float
        Probability that a byte on the virtual wire (either direction) is damaged, in [0, 1].
    seed : int
        Seed of the faults.
    waves : str or path, optional
        Waveform file (``.fst`` or ``.vcd``).
    window : (int, int), optional
        Dump only from the start of step A to the start of step B (steps the board ran since
        the emulator started, from 0).

    Attributes
    ----------
    port : str
        The pseudo-terminal to open, e.g. ``/dev/pts/7``.
    summary : str
        After :meth:`close`: the harness's line of figures (cycles, steps, bytes, faults).

    Raises
    ------
    SpikeforgeError
        ``faults`` or ``seed`` out of range, a waveform name with another suffix.
    ToolError
        The build failed, or the program ended before it gave its port.
    """

    def __init__(self, design, *, faults=0.0, seed=0, waves=None, window=None):
        if not isinstance(faults, (int, float)) or not 0 <= faults <= 1:
            raise SpikeforgeError(f"--faults must be a rate in [0, 1], not {faults!r}")
        check_int("--seed", seed, 0, (1 << 64) - 1, error=SpikeforgeError)
        kind = None
        if waves is not None:
            kind = str(waves).rpartition(".")[2].lower()
            if kind not in ("fst", "vcd"):
                raise SpikeforgeError(f"--waves must name a .fst or .vcd file, not {str(waves)!r}")
        binary = emulator_binary(design, kind)
        args = [
            binary,
            "--divisor",
            0 if design.byte_level else design.divisor,
            "--quiet",
            design.quiet_cycles,
            "--clock-hz",
            design.clock_hz,
            "--fault-ppm",
            round(faults * 1e6),
            "--seed",
            seed,
            "--delay-max",
            2 * design.timeout,
        ]
        if waves is not None:
            args += ["--waves", waves]
        if window is not None:
            args += ["--waves-from", window[0], "--waves-to", window[1]]
        self.summary = ""
        self._process = subprocess.Popen(
            [str(arg) for arg in args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = self._process.stdout.readline().strip()
        if not self.port:
            _, err = self._process.communicate(timeout=START_SECONDS)
            raise ToolError(
                f"emulator stopped before serving (status {self._process.returncode}): "
                f"{err.strip().splitlines()[-1] if err.strip() else 'no message'}"
            )

    def wait(self):
        """Serve until the program ends (a signal); its exit status."""
        return self._process.wait()

    def close(self):
        """Stop serving (once); keep the harness's figures in ``summary``."""
        if self._process.stdout.closed:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        try:
            _, err = self._process.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        lines = [line for line in err.splitlines() if line.startswith("emulator: ")]
        self.summary = lines[-1] if lines else ""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
