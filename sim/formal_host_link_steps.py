"""Formal harness of the host link's STEPS machinery (protocol 4's STEPS command, 0x07).

:class:`StepsHarness` elaborates a :class:`~spikeforge.hdl.host_link.HostLink` built as users
build it (``steps=True``) around the array model
(:class:`~spikeforge.sim.formal_host_link_model.FreeArray`) of the tiny network, and sends it,
from reset, one well-formed STEPS frame: ``AnyConst`` picks one of :data:`STEPS_REQUESTS`
(two steps, as bitmaps or as index lists), its bytes back to back, for the array's timestep
(assumed: the model's ``timestep`` is the frame's). The consumer of ``tx`` is free but ready at
least once in ``tx_stall + 1`` cycles; the array's timing free within the model's bounds.

This is a bounded check (``prove(..., mode="bmc")``), not an induction: the claims hold on every
trace of :attr:`StepsHarness.depth` cycles from reset. Asserted in every cycle (safety):

- ``steps: error frame``: no error frame is started;
- ``steps: start before the check``: the array's ``start`` only while the receiver holds a
  frame that passed every check (``HOLD``, error 0);
- ``steps: two headers``: the sender of the STEPS responses and the executor's own ``ANSWER``
  never offer a header in the same cycle;
- ``steps: ring overflow``: the spike ring holds at most ``neurons`` entries;
- ``steps: too many``: no more steps started than the frame asks for, no more 0x87 responses
  than steps started, no other response;

and at cycle :attr:`StepsHarness.bound` (``steps: not done in time``): both steps ran and were
answered, one 0x87 frame each, with 4 bytes plus 2 per reported spike in all, and the link is
idle again (the receiver hunting, the executor, its sender and the transmitter idle, the record
register empty).
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Fragment, Module, Mux, Signal
from amaranth.lib import wiring

from spikeforge.spec import protocol as p

from ..spec.limits import check_int
from .formal import no_reset
from .formal_host_link_model import free_link, tiny_network

__all__ = ["STEPS_REQUESTS", "STEPS_TIMESTEP", "StepsHarness"]

# The frames a check sends (``StepsHarness(request=...)``): the inputs of their steps, and
# whether as index lists (else bitmaps). Population 1 (the LIF population) is reported.
STEPS_REQUESTS = {
    "bitmaps": ([[0, 1]], False),
    "lists": ([[1]], True),
    "bitmaps2": ([[0], [0, 1]], False),
    "lists2": ([[1], []], True),
}
# Their timestep (the model's `timestep` is assumed to be it): both bytes set.
STEPS_TIMESTEP = 0x0305


class StepsHarness(wiring.Component):
    """A :class:`HostLink` with STEPS, sent one STEPS frame from reset, with the claims above.

    Parameters
    ----------
    timeout : int
        The link's byte timeout.
    tx_stall, in_stall, done_within, reset_within : int
        Bounds of the consumer of ``tx`` and of :class:`FreeArray`, as
        :class:`~spikeforge.sim.formal_host_link.HostLinkHarness`.

    Attributes
    ----------
    link : HostLink
    frames : list of bytes
        The frames of :data:`STEPS_REQUESTS`.
    bound : int
        Cycles from reset by which the frame is received, run and answered, the link idle: the
        sum of the frame's bytes and, per step, a run and a whole answer one after the other (an
        upper bound: the design overlaps them).
    depth : int
        The BMC depth that checks the claim at ``bound``.
    asserted : list of str
        Set by ``elaborate``: the messages of the assertions.
    """

    def __init__(
        self,
        request="bitmaps",
        *,
        timeout=16,
        tx_stall=1,
        in_stall=1,
        done_within=4,
        reset_within=4,
    ):
        if request is not None and request not in STEPS_REQUESTS:
            raise TypeError(
                f"request must be None or one of {', '.join(STEPS_REQUESTS)}, not {request!r}"
            )
        for name, value in [
            ("tx_stall", tx_stall),
            ("in_stall", in_stall),
            ("done_within", done_within),
            ("reset_within", reset_within),
        ]:
            check_int(name, value, 0, 255)
        net = tiny_network()
        self.link, plan = free_link(
            net,
            timeout=timeout,
            steps=True,
            in_stall=in_stall,
            done_within=done_within,
            reset_within=reset_within,
        )
        self.array = self.link.array
        self.tx_stall = tx_stall
        n_in = plan.n_inputs
        self.request = request
        self.asserted = []
        if request is None:
            # Free input: no frame, no bound; the depth is the caller's.
            self.frame = self.steps = self.bound = self.depth = None
            super().__init__({})
            return
        steps, lists = STEPS_REQUESTS[request]
        self.steps = len(steps)
        self.frame = p.encode_frame(
            p.CMD_STEPS,
            p.encode_steps(STEPS_TIMESTEP, steps, n_in, len(plan.populations), [1], lists),
        )
        # Received: every byte, LEN_CHECK, CRC_FOLD, CHECK, then EXEC.
        bound = len(self.frame) + 4
        for step in steps:
            # S_NEXT (and a cycle for the ring's registered room check); per buffer entry
            # S_READ and S_GOT; per event an S_BITS or nothing and an S_OFFER, waiting at most
            # `in_stall + 1` cycles for the input FIFO; the end through the FIFO; S_WAIT until
            # `done`, S_DONE.
            entries = len(step) + 1 if lists else (n_in + 7) // 8
            events = len(step) + 1
            bound += 2 + 2 * entries + events * (in_stall + 3) + 2 + done_within + 2
            # The step's answer: R_IDLE, R_HEAD, 6 bytes of frame, 4 of head and 2 per spike,
            # each at most `tx_stall + 2` cycles, TX_END.
            bound += 2 + (10 + 2 * self.link.neurons) * (tx_stall + 2) + 1
        # S_DRAIN, IDLE.
        self.bound = bound + 2
        self.depth = self.bound + 1
        self.asserted = []
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        link, a = self.link, self.array
        m.submodules.link = Fragment.get(link, platform)
        rx, ex, tx = (unit.probes for unit in (link.receiver, link.executor, link.transmitter))
        state = {**rx["state"], **ex["state"], **tx["state"]}

        # The consumer of tx: ready at least once in tx_stall + 1 cycles.
        waited = Signal(range(self.tx_stall + 1))
        m.d.comb += link.tx.ready.eq(AnySeq(1))
        m.d.sync += waited.eq(Mux(link.tx.ready, 0, waited + 1))
        m.d.comb += Assume(link.tx.ready | (waited != self.tx_stall))

        if self.frame is None:
            self._free_producer(m)
        else:
            self._producer(m)

        # A STEPS frame runs only for the array's timestep as it was when the executor took the
        # frame (compared here by the harness itself, registered as the executor does).
        match = Signal()
        taken = Signal()
        was_exec = Signal()
        m.d.sync += [
            match.eq(link.receiver.frame.payload.seq == a.timestep[:16]),
            was_exec.eq(state["EXEC"]),
        ]
        with m.If(state["IDLE"]):
            m.d.sync += taken.eq(match)
        claims = [
            (~a.start | (state["HOLD"] & (rx["err_code"] == 0)), "steps: start before the check"),
            (
                ~(was_exec & state["S_NEXT"]) | (taken & (rx["code"] == p.CMD_STEPS)),
                "steps: run for another timestep",
            ),
            (~(ex["main_header_valid"] & ex["sender_header_valid"]), "steps: two headers"),
            (ex["ring"]["count"] <= self.link.neurons, "steps: ring overflow"),
        ]
        if self.frame is not None:
            claims = [(~link.frame_error, "steps: error frame"), *claims, *self._run(m, state)]
        m.d.comb += [Assert(test, message) for test, message in claims]
        self.asserted = [message for _, message in claims]
        return m

    def _free_producer(self, m):
        """Free bytes at free times on ``rx`` (an offered byte stays offered, unchanged, until
        taken) and free UART errors; the array's timestep free."""
        rx = self.link.rx
        held = Signal()
        last = Signal(8)
        m.d.sync += [held.eq(rx.valid & ~rx.ready), last.eq(rx.payload)]
        m.d.comb += [
            rx.valid.eq(held | AnySeq(1)),
            rx.payload.eq(Mux(held, last, AnySeq(8))),
            self.link.rx_error.eq(AnySeq(1)),
        ]

    def _producer(self, m):
        """The frame's bytes, one offered in every cycle until all are taken; no UART error;
        the frame is for the array's timestep."""
        link, a = self.link, self.array
        sent = Signal(range(len(self.frame) + 1), name="sent")
        byte = Signal(8)
        with m.Switch(sent):
            for k, value in enumerate(self.frame):
                with m.Case(k):
                    m.d.comb += byte.eq(value)
        m.d.comb += [
            link.rx.valid.eq(sent != len(self.frame)),
            link.rx.payload.eq(byte),
            link.rx_error.eq(0),
            Assume(a.timestep[:16] == STEPS_TIMESTEP),
        ]
        with m.If(link.rx.valid & link.rx.ready):
            m.d.sync += sent.eq(sent + 1)

    def _run(self, m, state):
        """The claims about the frame's run: steps started and answered, in time."""
        link, a = self.link, self.array
        rx, ex = link.receiver.probes, link.executor.probes
        # What happened so far: cycles, steps started, 0x87 headers taken and their lengths,
        # reported spikes (population 1, the only LIF population).
        n = self.steps
        cycle = Signal(range(self.bound + 2), name="cycle")
        with m.If(cycle != self.bound + 1):
            m.d.sync += cycle.eq(cycle + 1)
        started = Signal(range(n + 2), name="started")
        answered = Signal(range(n + 2), name="answered")
        answer_bytes = Signal(16, name="answer_bytes")
        kept = Signal(range(n * self.link.neurons + 2), name="kept")
        other = Signal(name="other")
        header = link.transmitter.header
        head_taken = header.valid & header.ready
        is_steps = header.payload.code == (p.RESPONSE | p.CMD_STEPS)
        with m.If(a.start & (started != n + 1)):
            m.d.sync += started.eq(started + 1)
        with m.If(head_taken & is_steps & (answered != n + 1)):
            m.d.sync += [
                answered.eq(answered + 1),
                answer_bytes.eq(answer_bytes + header.payload.length),
            ]
        with m.If(head_taken & ~is_steps):
            m.d.sync += other.eq(1)
        out = a.spike_out
        with m.If(out.valid & out.ready & (out.payload.population == 1)):
            m.d.sync += kept.eq(kept + 1)

        idle = (
            state["HUNT"]
            & ~rx["line_bad"]
            & state["IDLE"]
            & state["TX_IDLE"]
            & ex["sender"]["R_IDLE"]
            & ~ex["record"]["full"]
            & ~ex["streaming"]
        )
        return [
            ((started <= n) & (answered <= started) & ~other, "steps: too many"),
            (
                (cycle != self.bound)
                | ((started == n) & (answered == n) & (answer_bytes == 4 * n + 2 * kept) & idle),
                "steps: not done in time",
            ),
        ]
