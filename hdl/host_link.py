"""The host link: framed commands over a byte stream, executed on a neuron array.

:class:`HostLink` receives frames (``docs/host-link.md``; constants and CRC in
:mod:`spikeforge.spec.protocol`) on a byte stream, checks them completely, and only then acts:
a STEP starts the array only after its whole frame passed the length, index and CRC checks, a CFG
write reaches the array's ``cfg`` port only after its CRC checked out. Anything else (a bad CRC, an
unknown command, a wrong length, a frame that stops arriving, a UART error) is answered with an
error frame and leaves the network untouched. After a header or CRC error the receiver first waits
for the line to stay quiet for ``timeout`` cycles, so that the rest of a broken frame is not read
as new frames, then answers.

It is three units in a row: :class:`~spikeforge.hdl.host_link_rx.FrameReceiver` (bytes in,
checked frames out), :class:`~spikeforge.hdl.host_link_exec.CommandExecutor` (a frame in, the
command done on the array, the response chosen) and
:class:`~spikeforge.hdl.host_link_tx.FrameTransmitter` (response frames out, with their CRC).
One frame at a time: the receiver takes no byte from a frame's check until its answer is out.

:class:`HostLinkUART` puts the 8N1 UART of :mod:`spikeforge.hdl.uart` in front: serial ``rx``
and ``tx`` lines instead of byte streams.
"""

import struct

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from ..spec.limits import check_int
from ._validate import validating
from .arith import ceil_div
from .array import NeuronArray
from .host_link_exec import EXEC_STATES, MAX_NEURONS, RESPONSES, CommandExecutor
from .host_link_rx import MAX_INPUTS, RX_STATES, TIMEOUT_RANGE, FrameReceiver
from .host_link_tx import TX_STATES, FrameTransmitter
from .uart import UARTRx, UARTTx

__all__ = [
    "HostLink",
    "HostLinkUART",
    "TIMEOUT_RANGE",
    "MAX_INPUTS",
    "MAX_NEURONS",
    "RX_STATES",
    "EXEC_STATES",
    "TX_STATES",
    "RESPONSES",
]


class HostLink(wiring.Component):
    """The command engine of the host link around a :class:`NeuronArray`.

    Parameters
    ----------
    plan : ArrayPlan
        The network (``spikeforge.gen.compile.compile_network``); at most :data:`MAX_INPUTS`
        inputs, 255 populations and :data:`MAX_NEURONS` LIF neurons (the frame fields are 8
        and 16 bits).
    stages : int
        Pipeline stages of the array's neuron cores.
    timeout : int
        Clock cycles without a byte after which a started frame counts as truncated, and the
        quiet time that ends the flush after an error.
    clock_hz : int
        Reported by IDENTIFY (0 when unknown).
    runtime_weights : bool
        The array keeps its weights in a store without initial contents
        (``NeuronArray(runtime_weights=True)``, CFG weight writes are bursts); STATUS says so
        (flag bit 2).
    steps : bool
        Take STEPS frames (many timesteps a frame, answered step by step while the next runs);
        without, the identity's ``steps_buffer`` is 0 (the formal harness leaves them out).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host.
    tx : Out(stream.Signature(8))
        Bytes to the host.
    rx_error : In(1)
        Strobe: a byte was lost or garbled on the line (UART framing error or overrun).
    frame_ok, frame_error, spike : Out(1)
        Strobes for LEDs: a command executed, an error frame sent, an output spike.
    busy : Out(1)
        The array is running a step.
    array : NeuronArray
        The array (for back-door reads in tests).
    receiver : FrameReceiver
    executor : CommandExecutor
    transmitter : FrameTransmitter
        The units; after elaboration each has ``probes`` for formal harnesses
        (:mod:`spikeforge.sim.formal_host_link`).
    """

    def __init__(
        self, plan, *, stages=4, timeout=4096, clock_hz=0, runtime_weights=False, steps=True
    ):
        neurons = sum(q.size for q in plan.lif_populations)
        # Checked before the array exists: a refused array would leave its memories unused.
        with validating(self):
            check_int("timeout", timeout, *TIMEOUT_RANGE)
            check_int("clock_hz", clock_hz, 0, (1 << 32) - 1)
            if not isinstance(steps, bool):
                raise TypeError(f"steps must be True or False, not {steps!r}")
            if plan.n_inputs > MAX_INPUTS or len(plan.populations) > 0xFF or neurons > MAX_NEURONS:
                raise ValueError(
                    f"the host link carries at most {MAX_INPUTS} inputs, 255 "
                    f"populations and {MAX_NEURONS} LIF neurons, not "
                    f"{plan.n_inputs}, {len(plan.populations)} and {neurons}"
                )
            self.array = NeuronArray(plan, stages=stages, runtime_weights=runtime_weights)
        self.plan = plan
        self.stages = stages
        self.runtime_weights = runtime_weights
        self.timeout = timeout
        self.clock_hz = clock_hz
        self.neurons = neurons
        self.data_bytes = ceil_div(self.array.cfg_data_width, 8)
        self.steps = steps
        self.receiver = FrameReceiver(
            plan.n_inputs,
            self.data_bytes,
            timeout=timeout,
            populations=max(len(plan.populations), 1),
            steps=steps,
        )
        self.identity = struct.pack(
            p.IDENTITY_FORMAT,
            p.MAGIC,
            p.VERSION,
            plan.lanes,
            stages,
            plan.v_width,
            plan.w_width,
            plan.acc_width,
            self.array.cfg_addr_width,
            self.array.cfg_data_width,
            len(plan.populations),
            plan.n_inputs,
            plan.slots,
            plan.weight_words,
            neurons,
            clock_hz,
            bytes.fromhex(plan.network_hash or "00" * 32),
            bytes.fromhex(plan.layout_hash()),
            self.receiver.steps_buffer,
        )
        self.executor = CommandExecutor(
            plan,
            self.array,
            identity=self.identity,
            runtime_weights=runtime_weights,
            steps=steps,
        )
        self.transmitter = FrameTransmitter()
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "tx": Out(stream.Signature(8)),
                "rx_error": In(1),
                "frame_ok": Out(1),
                "frame_error": Out(1),
                "spike": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = self.receiver
        m.submodules.executor = executor = self.executor
        m.submodules.transmitter = transmitter = self.transmitter
        # `self.array`, not the one the executor was built for: a formal harness puts a model
        # of the array's interface in its place.
        m.submodules.array = self.array
        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, receiver.frame, executor.frame)
        wiring.connect(m, receiver.indices, executor.indices)
        wiring.connect(m, executor.array, self.array)
        wiring.connect(m, executor.header, transmitter.header)
        wiring.connect(m, executor.payload, transmitter.payload)
        wiring.connect(m, transmitter.tx, wiring.flipped(self.tx))
        m.d.comb += [
            receiver.rx_error.eq(self.rx_error),
            executor.sent.eq(transmitter.done),
            self.frame_ok.eq(executor.frame_ok),
            self.frame_error.eq(executor.frame_error),
            self.spike.eq(executor.spike),
            self.busy.eq(executor.busy),
        ]
        return m


class HostLinkUART(wiring.Component):
    """:class:`HostLink` behind an 8N1 UART: the serial lines of a board's USB-serial bridge.

    Parameters
    ----------
    plan : ArrayPlan
    divisor : int
        Clock cycles per bit (``spikeforge.hdl.uart.uart_divisor``).
    stages : int
    timeout : int, optional
        Byte timeout in cycles; default 64 byte times.
    clock_hz : int
    runtime_weights, steps : bool
        As :class:`HostLink`.

    Attributes
    ----------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host (idle high).
    frame_ok, frame_error, spike, busy : Out(1)
        As :class:`HostLink`.
    link : HostLink
    """

    def __init__(
        self,
        plan,
        divisor,
        *,
        stages=4,
        timeout=None,
        clock_hz=0,
        runtime_weights=False,
        steps=True,
    ):
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.link = HostLink(
            plan,
            stages=stages,
            clock_hz=clock_hz,
            runtime_weights=runtime_weights,
            timeout=640 * divisor if timeout is None else timeout,
            steps=steps,
        )
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "frame_ok": Out(1),
                "frame_error": Out(1),
                "spike": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        m.submodules.link = link = self.link
        # The receive buffer (`protocol.RX_BUFFER` bytes, one block RAM): the host sends frames
        # without waiting for each answer, and their bytes wait here while the link runs a step
        # or answers.
        m.submodules.rx_queue = rx_queue = fifo.SyncFIFOBuffered(width=8, depth=p.RX_BUFFER)
        # Two bytes of buffer between it and the link: the link's `ready` is decoded from its
        # state register, and in front of the big buffer's read logic (its level, the output
        # register) it was the iCE40's critical path; nor may it reach the receiver's overrun
        # logic, which feeds the link's error input (a combinational loop through both).
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=2)
        m.d.comb += [
            rx_queue.w_data.eq(self.uart_rx.data.payload),
            rx_queue.w_en.eq(self.uart_rx.data.valid),
            self.uart_rx.data.ready.eq(rx_queue.w_rdy),
            rx_fifo.w_data.eq(rx_queue.r_data),
            rx_fifo.w_en.eq(rx_queue.r_rdy),
            rx_queue.r_en.eq(rx_fifo.w_rdy),
            link.rx.valid.eq(rx_fifo.r_rdy),
            link.rx.payload.eq(rx_fifo.r_data),
            rx_fifo.r_en.eq(link.rx.ready),
        ]
        wiring.connect(m, link.tx, self.uart_tx.data)
        m.d.comb += [
            self.uart_rx.rx.eq(self.rx),
            self.tx.eq(self.uart_tx.tx),
            link.rx_error.eq(self.uart_rx.error | self.uart_rx.overflow),
            self.frame_ok.eq(link.frame_ok),
            self.frame_error.eq(link.frame_error),
            self.spike.eq(link.spike),
            self.busy.eq(link.busy),
        ]
        return m
