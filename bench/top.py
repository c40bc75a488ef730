"""The board top of the build and capacity figures: the bare array, kept whole by synthesis."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import io, wiring

from ..hdl.arith import ceil_div
from ..hdl.array import NeuronArray

__all__ = ["BenchTop"]


class BenchTop(wiring.Component):
    """A board top for resource and Fmax figures of the bare array.

    Every input port of the array is driven from a free-running 32-bit LFSR and every output is
    registered, then folded into one XOR bit on an LED, so that synthesis cannot remove any part
    of the array. It measures the array alone: no host link, no I/O protocol.

    Its only ports are the board's pins, which it requests from the platform it is elaborated
    for; so its signature is empty.

    Parameters
    ----------
    board : Board
        The board whose first LED shows the fold.
    plan : ArrayPlan
    stages : int
        Neuron pipeline stages.
    runtime_weights : bool
        Weights in SPRAM (``NeuronArray(runtime_weights=True)``).
    """

    def __init__(self, board, plan, stages=4, runtime_weights=False):
        self.board = board
        self.plan = plan
        self.stages = stages
        self.runtime_weights = runtime_weights
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = NeuronArray(
            self.plan, stages=self.stages, runtime_weights=self.runtime_weights
        )
        lfsr = Signal(32, init=1)
        # x^32 + x^22 + x^2 + x + 1: a maximal-length LFSR, only XORs.
        m.d.sync += lfsr.eq(Cat(lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0], lfsr[:31]))
        inputs = Cat(
            array.spike_in.valid,
            array.spike_in.payload.as_value(),
            array.cfg.valid,
            array.cfg.payload.as_value(),
            array.reset_state,
            array.start,
            array.spike_out.ready,
        )
        stream = Cat(*[lfsr.rotate_left(n) for n in range(ceil_div(len(inputs), 32))])
        m.d.comb += inputs.eq(stream[: len(inputs)])
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
