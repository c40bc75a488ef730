"""Formal harness of the host link's receiver (:class:`~spikeforge.hdl.host_link.HostLink`).

:class:`HostLinkHarness` elaborates a ``HostLink`` of a tiny network and feeds its ``rx``
stream with free bytes (``AnySeq``: any value, any timing, under the stream protocol: a byte
offered stays offered, unchanged, until taken) and free UART errors on ``rx_error``. The
transmitter's consumer is free too, but never holds ``tx.ready`` low for more than
``tx_stall`` cycles in a row. The neuron array inside is replaced by
:class:`~spikeforge.sim.formal_host_link_model.FreeArray`, a model of its interface whose
timing is free within bounds (see there).

The link is built as boards build it, with STEPS (``steps=True``; ``steps=False`` leaves
them out). STEPS frames of bitmaps run (their steps, the record register, the sender of the
0x87 responses and the spike ring are in the proofs); the environment never sends a STEPS
frame of index lists that passes its checks for the array's timestep (one for another
timestep, or a broken one, is received, checked and answered with its error). The runs of
index lists have bounded checks in :mod:`spikeforge.sim.formal_host_link_steps`.

The link is three units, each with its state machine (``spikeforge.hdl.host_link_rx``,
``_exec``, ``_tx``); the harness reads their states and registers through their ``probes``.
The receiver holds a frame (``HOLD``) from its check until the answer is out; the executor is
busy only then, and the transmitter only while the executor sends (``SEND``).

Properties (``check``):

``"live"``
    No wedge. The harness counts the cycles the input has been quiet (no byte offered, no
    UART error) and asserts that after :attr:`HostLinkHarness.quiet_bound` quiet cycles the
    receiver is idle: hunting for a frame start, with no UART error pending. The proof is a
    ranking function: :meth:`HostLinkHarness.rank` gives, for every state, a bound on the
    quiet cycles still needed to get idle; it is asserted to fall by at least one in every
    quiet cycle, and to be at most ``quiet_bound`` minus the quiet cycles already seen. With
    the invariants asserted beside it (counters within their ranges, the three units and the
    array model in step with each other) this is closed by k-induction, so it holds from
    every reachable state, after any input whatsoever.
``"recover"``
    Recovery. A sequencer lets the free input run for as long as the solver likes, then keeps
    the line quiet for ``quiet_bound`` cycles, then sends one well-formed STATUS or IDENTIFY
    request (``AnyConst`` picks which; the bytes of ``spikeforge.spec.protocol``) with at
    most ``gap`` idle cycles before each byte. Asserted: no error frame is started, and within
    :attr:`HostLinkHarness.accept_bound` cycles of the start of the request the link executes
    it (``frame_ok``) and starts the matching response. Includes the ``"live"`` assertions,
    which the induction needs.
"""

import re
from types import SimpleNamespace

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Const, Fragment, Module, Mux, Signal
from amaranth.lib import wiring

from spikeforge.hdl.host_link import RX_STATES, TX_STATES
from spikeforge.hdl.host_link_exec import STEPS_STATES, decode_command
from spikeforge.hdl.host_link_rx import FRAME_STATES
from spikeforge.spec import protocol as p

from ..spec.limits import check_int
from .formal import check_properties, no_reset
from .formal_host_link_model import FreeArray, free_link, tiny_network
from .formal_host_link_rank import Ranking
from .formal_host_link_recover import REQUESTS, Recovery

__all__ = [
    "PROPERTIES",
    "REQUESTS",
    "tiny_network",
    "FreeArray",
    "HostLinkHarness",
    "failed_assertions",
]

PROPERTIES = ("live", "recover")


def _one_hot(bits):
    """Exactly one of ``bits`` is set."""
    return (bits != 0) & ((bits & (bits - 1)) == 0)


def _any(state, names):
    """High in any of the states ``names``."""
    result = Const(0)
    for name in names:
        result = result | state[name]
    return result


class HostLinkHarness(wiring.Component):
    """A :class:`HostLink` of ``net`` under free input, with the assertions of ``check``.

    Parameters
    ----------
    net : Network
        Default :func:`tiny_network`.
    timeout : int
        The link's byte timeout.
    check : iterable of str
        Some of :data:`PROPERTIES`.
    tx_stall : int
        Cycles in a row ``tx.ready`` may stay low.
    in_stall, done_within, reset_within : int
        Bounds of :class:`FreeArray`.
    gap : int
        ``"recover"``: idle cycles at most before each byte of the request; below
        ``timeout``.
    quiet : int, optional
        ``"recover"``: quiet cycles before the request; default ``quiet_bound``, which the
        proof needs. Fewer only for bounded checks (``mode="bmc"``).
    garbage : bool
        ``"recover"``: free input before the quiet cycles; without it the request follows
        the reset (for bounded checks of the request alone).
    invariants : bool
        Also assert the invariants the induction needs; without them only the claims are
        asserted (for bounded checks that must fail on a claim).
    steps : bool
        Build the link with STEPS, as boards do (``HostLink(steps=True)``). Frames of bitmaps
        run; the environment never sends a STEPS frame of index lists that passes its checks
        for the array's timestep (an assumption on the model's free timestep): those are
        received, checked and answered with their errors; their runs have the bounded checks
        of :mod:`spikeforge.sim.formal_host_link_steps`.

    Attributes
    ----------
    link : HostLink
    quiet_bound : int
        Quiet cycles after which the receiver is idle, whatever came before.
    accept_bound : int
        Cycles from the start of a well-formed request (sent after ``quiet_bound`` quiet
        cycles) to the cycle that executes it.
    asserted : list of str
        Set by ``elaborate``: the messages of the assertions made, claims (``"live: ..."``,
        ``"recover: ..."``) and, with ``invariants``, the invariants (``"inv: ..."``,
        ``"seq: ..."``).
    """

    def __init__(
        self,
        net=None,
        *,
        timeout=16,
        check=PROPERTIES,
        tx_stall=2,
        in_stall=1,
        done_within=4,
        reset_within=4,
        gap=2,
        quiet=None,
        garbage=True,
        invariants=True,
        steps=True,
    ):
        self.check = check_properties(check, PROPERTIES)
        for name, value in [
            ("tx_stall", tx_stall),
            ("in_stall", in_stall),
            ("done_within", done_within),
            ("reset_within", reset_within),
        ]:
            check_int(name, value, 0, 255)
        if not 0 <= gap < timeout:
            raise ValueError(f"gap must be below the timeout {timeout}, not {gap!r}")
        if not isinstance(steps, bool):
            raise TypeError(f"steps must be True or False, not {steps!r}")
        if quiet is not None and (not isinstance(quiet, int) or quiet < 1):
            raise TypeError(f"quiet must be a positive integer, not {quiet!r}")
        net = tiny_network() if net is None else net
        self.link, plan = free_link(
            net,
            timeout=timeout,
            steps=steps,
            in_stall=in_stall,
            done_within=done_within,
            reset_within=reset_within,
        )
        self.array = self.link.array
        self.timeout = timeout
        self.tx_stall = tx_stall
        self.n_in = plan.n_inputs
        self.tx_waited = Signal(range(tx_stall + 1))  # cycles tx.ready has been low
        self.ranking = Ranking(self.link, tx_stall=tx_stall, tx_waited=self.tx_waited)
        self.quiet_bound = self.ranking.bound
        self.quiet = self.quiet_bound if quiet is None else quiet
        self.invariants = invariants
        self.recovery = Recovery(
            self.link,
            gap=gap,
            quiet=self.quiet,
            garbage=garbage,
            status_len=self.ranking.status_len,
        )
        self.accept_bound = self.recovery.accept_bound
        self.asserted = []
        super().__init__({})

    def rank(self, m, u):
        """The ranking function (:class:`~spikeforge.sim.formal_host_link_rank.Ranking`) as a
        signal; ``u`` holds the units' probes."""
        return self.ranking.signal(m, u)

    # --- the environment -----------------------------------------------------------------------

    def _consumer(self, m):
        """The consumer of ``tx``: ready at least once in ``tx_stall + 1`` cycles."""
        tx = self.link.tx
        m.d.comb += tx.ready.eq(AnySeq(1))
        with m.If(tx.ready):
            m.d.sync += self.tx_waited.eq(0)
        with m.Else():
            m.d.sync += self.tx_waited.eq(self.tx_waited + 1)
        m.d.comb += Assume(tx.ready | (self.tx_waited != self.tx_stall))

    def _producer(self, m, recover):
        """The producer of ``rx`` and ``rx_error``: free, or the sequencer of ``"recover"``.

        Returns the quiet strobe (no byte offered, no UART error), the stream's ``held`` (a
        byte offered last cycle was not taken) and, for ``"recover"``, the sequencer's
        signals.
        """
        rx = self.link.rx
        held = Signal()
        last = Signal(8)
        free_valid = Signal()
        free_byte = Signal(8)
        error = Signal()
        m.d.comb += [free_valid.eq(AnySeq(1)), free_byte.eq(AnySeq(8))]
        m.d.sync += [held.eq(rx.valid & ~rx.ready), last.eq(rx.payload)]
        quiet = Signal()
        m.d.comb += [self.link.rx_error.eq(error), quiet.eq(~rx.valid & ~error)]
        free = [
            rx.valid.eq(held | free_valid),
            rx.payload.eq(Mux(held, last, free_byte)),
            error.eq(AnySeq(1)),
        ]
        if not recover:
            m.d.comb += free
            return quiet, held, None

        return quiet, held, self.recovery.drive(m, held, free, free_valid)

    # --- the assertions ------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        link = self.link
        # Elaborated here, so that the units' probes exist for the assertions.
        # With STEPS, "formal": the input FIFO in front of the array then asserts that its
        # level and pointers agree (Amaranth's SyncFIFO does so on that platform).
        m.submodules.link = Fragment.get(link, "formal" if link.steps else platform)
        rx, ex, tx = (unit.probes for unit in (link.receiver, link.executor, link.transmitter))
        u = SimpleNamespace(
            rx=rx,
            ex=ex,
            tx=tx,
            state={**rx["state"], **ex["state"], **tx["state"]},
            lb=rx["line_bad"],
        )
        u.idle = u.state["HUNT"] & ~u.lb
        u.end_queued, u.fifo_asserts = Const(0), []
        if link.steps:
            self._fifo(m, u)
        u.answering = u.state["ANSWER"] | u.state["SEND"]
        recover = "recover" in self.check

        self._consumer(m)
        quiet, held, s = self._producer(m, recover)
        # (test, message) pairs; the messages of the claims start with "live:" or "recover:",
        # those of the invariants the induction needs with "inv:" or "seq:". Every property
        # includes "live".
        quiet_for, asserts = self._live(m, u, quiet)
        # What the receiver's registered header checks must be in LEN_CHECK.
        u.kinds = None
        if link.steps:
            code = rx["code"]
            u.kinds = (
                (code == p.CMD_IDENTIFY)
                | (code == p.CMD_STATUS)
                | (code == p.CMD_RESET)
                | (code == p.CMD_LAST),
                code == p.CMD_CFG,
                code == p.CMD_STEP,
                code == p.CMD_STEPS,
            )
        u.header = link.receiver.header_checks(
            m, rx["code"], Cat(rx["lo_byte"], rx["byte_reg"]), u.kinds
        )
        asserts += self._units(u)
        if link.steps:
            asserts += self._steps(m, u)
        asserts += self._sequence(m, u)
        if recover:
            asserts += self.recovery.claims(m, u, s, held, quiet_for)
        chosen = [
            (test, message)
            for test, message in asserts
            if self.invariants or message.startswith(("live:", "recover:"))
        ]
        m.d.comb += [Assert(test, message) for test, message in chosen]
        self.asserted = [message for _, message in chosen]
        return m

    def _live(self, m, u, quiet):
        """The ``"live"`` claims, the ranking function's, and the count of quiet cycles."""
        rank = self.rank(m, u)
        idle = u.idle
        bound = self.quiet_bound
        quiet_for = Signal(range(bound + 1), name="quiet_for")
        with m.If(~quiet):
            m.d.sync += quiet_for.eq(0)
        with m.Elif(quiet_for != bound):
            m.d.sync += quiet_for.eq(quiet_for + 1)
        was_quiet = Signal()
        was_idle = Signal()
        last_rank = Signal.like(rank)
        m.d.sync += [was_quiet.eq(quiet), was_idle.eq(idle), last_rank.eq(rank)]
        return quiet_for, [
            # The claim.
            ((quiet_for != bound) | idle, "live: not idle after the quiet bound"),
            # The ranking function falls in quiet cycles and bounds the rest.
            (~idle | (rank == 0), "live: rank of idle"),
            (idle | (rank != 0), "live: zero rank when busy"),
            (~was_quiet | was_idle | (rank < last_rank), "live: rank did not fall"),
            (~was_quiet | ~was_idle | idle, "live: left idle without input"),
            (idle | (quiet_for + rank <= bound), "live: rank above the bound"),
            (quiet_for <= bound, "inv: quiet_for"),
        ]

    def _sequence(self, m, u):
        """A STEP starts the array exactly when its timestep is the array's, as the two were when
        the executor took the frame (compared here by the harness itself)."""
        match = Signal()
        taken = Signal()
        m.d.sync += match.eq(self.link.receiver.frame.payload.seq == self.array.timestep[:16])
        with m.If(u.state["IDLE"]):
            m.d.sync += taken.eq(match)
        step = (u.rx["code"] == p.CMD_STEP) & taken
        return [(~u.state["EXEC"] | (u.ex["start"] == step), "inv: step at its timestep")]

    def _steps(self, m, u):
        """With STEPS: the assumption that no STEPS frame of index lists runs, and the
        invariants of STEPS runs of bitmaps (the executor's steps, the record register, the
        sender and the spike ring), the registered frame kinds and the input FIFO."""
        state, rx, ex, tx, a = u.state, u.rx, u.ex, u.tx, self.array
        frame = self.link.receiver.frame.payload
        neurons = self.link.neurons
        # The environment: a STEPS frame of index lists that passed every check is never for
        # the array's timestep (it is answered with error 7); only the array model's free
        # timestep is constrained by this.
        m.d.comb += Assume(
            ~(
                state["IDLE"]
                & self.link.receiver.frame.valid
                & (frame.error == 0)
                & (rx["code"] == p.CMD_STEPS)
                & ex["in_sequence"]
                & frame.lists
            )
        )
        bare, cfg, step, steps = u.kinds
        record, ring, sender, run = ex["record"], ex["ring"], ex["sender"], ex["run"]
        regs = ex["sender_regs"]
        data_ready, index_ready = rx["steps_ready"]
        # The kinds are registered from the code, which LEN0 does not change: current from LEN1.
        current = _any(state, ("LEN1", "LEN_CHECK", "PAYLOAD", "CRC0", "CRC1", "CRC_FOLD", "CHECK"))
        streaming = ex["streaming"]
        held_count = record["held"][32:]
        # The spike entries of the response the sender has taken and not sent (the harness's
        # count): set from the record it takes, less one per entry sent.
        unsent = Signal(range(neurons + 1), name="unsent")
        with m.If(record["pop"]):
            m.d.sync += unsent.eq(held_count)
        with m.Elif(ring["advance"]):
            m.d.sync += unsent.eq(unsent - 1)
        # The reported LIF neurons of the frame on offer, as the executor's `reported`.
        total = Const(0)
        for number, population in enumerate(self.link.plan.populations):
            if not population.is_input:
                total = total + Mux(frame.report[number], population.size, 0)
        room = Signal(name="room_expected")
        m.d.sync += room.eq(ring["count"] + ring["reported"] <= neurons)
        run_states = [name for name in STEPS_STATES if name not in ("S_NEXT", "S_DRAIN")]
        in_step = _any(state, run_states)
        started = _any(state, run_states[1:])  # the array was started
        offering = _any(state, ("S_GOT", "S_BITS", "S_OFFER"))
        quiet_states = _any(state, ("S_NEXT", "S_READ", "S_DONE", "S_DRAIN"))
        cur = ring["cur"]
        in_spikes, left, hi = regs["in_spikes"], regs["left"], regs["hi"]
        # The payload bytes the sender still has to give: the head's, then 2 per entry.
        to_give = Mux(in_spikes, 0, left) + 2 * unsent - hi
        tx_payload = _any(state, ("TX_CODE", "TX_LEN0", "TX_LEN1", "TX_PAYLOAD"))
        return [
            (_one_hot(Cat(*sender.values())), "inv: sender state"),
            (
                ~state["EXEC"]
                | (
                    ((ex["steps_go"] | ex["steps_stale"]) == (rx["code"] == p.CMD_STEPS))
                    & ~(ex["steps_go"] & ex["steps_stale"])
                ),
                "inv: STEPS decoded",
            ),
            (ex["sending"] == (state["SEND"] | sender["R_SEND"]), "inv: sending"),
            (~ex["settled"] | state["FEED"], "inv: settled"),
            (
                ~current | (Cat(*rx["kinds"]) == Cat(bare, cfg, step, steps)),
                "inv: kinds",
            ),
            (~(data_ready | index_ready) | state["PAYLOAD"] | state["CRC0"], "inv: STEPS entry"),
            # A checked STEPS frame has a step or more; the one run is of bitmaps.
            (
                ~((state["CHECK"] & ~rx["bad_payload"]) | (state["HOLD"] & (rx["err_code"] == 0)))
                | (rx["code"] != p.CMD_STEPS)
                | (frame.steps != 0),
                "inv: STEPS checked",
            ),
            (
                ~(state["EXEC"] & ex["steps_go"]) | ((frame.steps != 0) & ~frame.lists),
                "inv: STEPS taken",
            ),
            (streaming == _any(state, STEPS_STATES), "inv: streaming"),
            (~streaming | (state["HOLD"] & ~frame.lists), "inv: STEPS run"),
            (~in_step & ~state["S_NEXT"] | (run["steps_left"] != 0), "inv: steps left"),
            (~state["S_DRAIN"] | (run["steps_left"] == 0), "inv: steps drained"),
            (state["S_OFFER"] == run["offer"], "inv: STEPS offer"),
            # The array: started from S_NEXT, running while the step's inputs go in.
            (~quiet_states | ~a.busy, "inv: STEPS array idle"),
            (~offering | (a.running & ~a.ended), "inv: STEPS feeding"),
            (~state["S_WAIT"] | (a.running & (a.ended | u.end_queued)), "inv: STEPS wait"),
            # The record register and the sender.
            (~in_step | ~record["full"], "inv: record in a step"),
            (streaming | (sender["R_IDLE"] & ~record["full"]), "inv: sender idle"),
            (~sender["R_IDLE"] | (unsent == 0), "inv: unsent"),
            (unsent <= neurons, "inv: unsent range"),
            (~record["full"] | (held_count <= neurons), "inv: record count"),
            (
                ~sender["R_HEAD"]
                | (
                    state["TX_IDLE"]
                    & ~tx["t_full"]
                    & (regs["length"] == 4 + 2 * unsent)
                    & (left == 4)
                    & ~in_spikes
                    & ~hi
                ),
                "inv: sender head",
            ),
            (
                sender["R_IDLE"] | Mux(in_spikes, left == 0, (left >= 1) & (left <= 4)),
                "inv: sender left",
            ),
            (sender["R_IDLE"] | ~hi | (in_spikes & (unsent != 0)), "inv: sender hi"),
            (
                ~sender["R_SEND"] | (to_give == Mux(tx_payload, tx["t_len"], 0)),
                "inv: sender bytes",
            ),
            # The spike ring: its entries are those of the response taken, of the record
            # held and of the step running; a step starts only with room for all its spikes.
            (ring["count"] == unsent + Mux(record["full"], held_count, 0) + cur, "inv: ring"),
            (streaming | (cur == 0), "inv: ring idle"),
            (~(quiet_states & ~state["S_DONE"]) | (cur == 0), "inv: ring cur"),
            (~started | ~a.running | (cur <= a.spikes), "inv: ring spikes"),
            (~streaming | (ring["reported"] == total), "inv: reported"),
            (ring["room"] == room, "inv: room"),
            (
                ~(state["S_NEXT"] & ring["room"]) | (ring["count"] + total <= neurons),
                "inv: room in S_NEXT",
            ),
            (
                ~in_step | ((cur <= total) & (ring["count"] + total <= neurons + cur)),
                "inv: room in a step",
            ),
            (
                ~(state["S_NEXT"] & sender["R_IDLE"] & ~record["full"]) | ring["room"],
                "inv: room when drained",
            ),
            (
                ~streaming | (self.ranking.stream_rank <= self.ranking.steps_max),
                "inv: STEPS rank",
            ),
        ] + u.fifo_asserts

    def _fifo(self, m, u):
        """The input FIFO in front of the array (with STEPS): its level, the `end` items in it
        (counted by the harness, ``u.end_queued``), the array's stall counter."""
        state, ex, a = u.state, u.ex, self.array
        fifo = ex["in_fifo"]
        layout = a.spike_in.payload.shape()
        pushed_end = fifo.w_en & fifo.w_rdy & layout(fifo.w_data).end
        sin = a.spike_in
        taken_end = sin.valid & sin.ready & sin.payload.end
        ends = Signal(2, name="fifo_ends")
        m.d.sync += ends.eq(ends + pushed_end - taken_end)
        u.end_queued = ends == 1
        feeding = _any(state, ("FEED", "FEED_WAIT", "S_GOT", "S_BITS", "S_OFFER"))
        waiting = state["STEP_WAIT"] | state["S_WAIT"]
        level = fifo.level
        u.fifo_asserts = [
            (feeding | waiting | (level == 0), "inv: fifo idle"),
            (ends <= Mux(waiting, level, 0), "inv: fifo end"),
            (~waiting | (a.ended != u.end_queued), "inv: fifo end queued"),
            # `end` is the last event: once the array took it, the FIFO is empty.
            (~a.ended | (level == 0), "inv: fifo after the end"),
            (
                ~(waiting & (level == 1) & u.end_queued) | sin.payload.end,
                "inv: fifo last",
            ),
            (~(feeding & (level != 0)) | ~sin.payload.end, "inv: fifo head"),
            ((level != 0) | (a.stalled == 0), "inv: fifo stall"),
        ]

    def _units(self, u):
        """Invariants the induction needs: each unit's registers, the units and the array
        model in step with each other."""
        state, rx, ex, tx, a = u.state, u.rx, u.ex, u.tx, self.array
        code = rx["code"]
        known = Const(0)
        # (The link is built without STEPS here: its code is an unknown command.)
        for cmd in p.COMMANDS:
            if cmd != p.CMD_STEPS or self.link.steps:
                known = known | (code == cmd)
        receiving = _any(state, [name for name in RX_STATES if name != "HOLD"])
        after_len = _any(state, ("PAYLOAD", "CRC0", "CRC1", "CRC_FOLD", "CHECK", "EXEC"))
        # The STEP's timestep and indices: LEN_CHECK took at most 2 n_in + 2 bytes.
        n_idx, half, left = rx["n_idx"], rx["half"], rx["left"]
        taken = n_idx + rx["index_ready"]
        feeding = state["FEED"] | state["FEED_WAIT"]
        steps = self.link.steps
        # With STEPS, the sender's payload too; a step of a STEPS frame.
        sending = state["SEND"] | (ex["sender"]["R_SEND"] if steps else 0)
        s_read = state["S_READ"] if steps else 0
        s_running = _any(state, ("S_GOT", "S_BITS", "S_OFFER", "S_WAIT")) if steps else 0
        # Each unit's states, a flip-flop each: exactly one set.
        one_hot = [
            (_one_hot(Cat(*(state[name] for name in names))), f"inv: {unit} state")
            for unit, names in (
                ("receiver", RX_STATES),
                ("executor", tuple(ex["state"])),
                ("transmitter", TX_STATES),
            )
        ]
        return one_hot + [
            # One frame at a time: the executor busy only with a frame held, the transmitter
            # only while the executor sends.
            (state["IDLE"] | state["HOLD"], "inv: executor busy without a frame"),
            (sending == ~state["TX_IDLE"], "inv: transmitter"),
            # A good frame is taken from CHECK, with error 0; only errors wait in HOLD for the
            # idle executor.
            (~(state["HOLD"] & state["IDLE"]) | (rx["err_code"] != 0), "inv: error on offer"),
            (~state["FLUSH"] | (rx["err_code"] != 0), "inv: error flushed"),
            (~receiving | state["HUNT"] | state["FLUSH"] | (rx["err_code"] == 0), "inv: error"),
            # The transmitter.
            (~tx["t_full"] | ~state["TX_IDLE"], "inv: t_full"),
            (tx["t_len"] <= self.ranking.max_len, "inv: t_len"),
            (~state["TX_PAYLOAD"] | (tx["t_len"] != 0), "inv: t_len in payload"),
            (
                tx["t_full"]
                | ((tx["t_zero"] == (tx["t_len"] == 0)) & (tx["t_one"] == (tx["t_len"] == 1))),
                "inv: t_len compared",
            ),
            # The receiver.
            (
                ~_any(state, (*FRAME_STATES, "FLUSH", "LEN_CHECK")) | (rx["timer"] <= self.timeout),
                "inv: timer",
            ),
            (rx["timed_out"] == (rx["timer"] == self.timeout), "inv: timer compared"),
            (~after_len | known, "inv: command known"),
            (taken <= self.n_in, "inv: n_idx"),
            (~state["PAYLOAD"] | (left != 0), "inv: left"),
            (
                ~(state["PAYLOAD"] & (code == p.CMD_STEP))
                | (2 * taken + half + left + Mux(rx["seq_next"], 0, 2) <= 2 * self.n_in + 2),
                "inv: step payload",
            ),
            (~rx["seq_next"] | (taken == 0), "inv: timestep before the indices"),
            (~rx["index_ready"] | state["PAYLOAD"] | state["CRC0"], "inv: index check"),
            (~state["LEN_CHECK"] | (rx["checked"] == u.header), "inv: header checks"),
            (~state["CHECK"] | (rx["crc_zero"] == (rx["crc"] == 0)), "inv: CRC checked"),
            # The executor and the array model.
            (
                Mux(
                    state["EXEC"],
                    (ex["start"] == ex["command"].step) & (ex["reset"] == (code == p.CMD_RESET)),
                    (ex["start"] == s_read) & ~ex["reset"],
                ),
                "inv: start and reset",
            ),
            (~feeding | (ex["feed"] <= n_idx), "inv: feed"),
            (
                # A STEP is `step` or `stale`, as the timestep compared when it was taken.
                ~state["EXEC"]
                | (ex["command"].as_value() == decode_command(code, ex["command"].step)),
                "inv: command decoded",
            ),
            (~state["FEED"] | (ex["last"] == (ex["feed"] == n_idx)), "inv: last index"),
            (ex["chosen"].as_value() == (Const(1, 1) << ex["resp"]), "inv: response one-hot"),
            (
                ex["offer"]
                == (state["FEED"] & ~ex["settled"] if self.link.steps else state["FEED"]),
                "inv: offer",
            ),
            (ex["in_spikes"] == (ex["step"] & ~ex["head"][0]), "inv: past the step head"),
            (~(a.running & a.resetting), "inv: array"),
            (a.stalled <= a.in_stall, "inv: in_stall"),
            (self.tx_waited <= self.tx_stall, "inv: tx_stall"),
            (a.since_end <= a.done_within, "inv: since_end"),
            (a.reset_cycles <= a.reset_within, "inv: reset_cycles"),
            (~feeding | (a.running & ~a.ended), "inv: feeding"),
            (~state["STEP_WAIT"] | (a.running & (a.ended | u.end_queued)), "inv: step wait"),
            (~state["RESET_WAIT"] | ~a.running, "inv: reset wait"),
            (
                feeding | state["STEP_WAIT"] | state["RESET_WAIT"] | s_running | ~a.busy,
                "inv: array idle",
            ),
            (~a.running | s_running | (ex["n_spk"] == a.spikes), "inv: spikes"),
            (ex["n_spk"] <= self.link.neurons, "inv: n_spk"),
        ]


def failed_assertions(result):
    """The messages of the assertions that failed in ``result`` (a :class:`FormalResult`).

    sby names a failed assertion by its cell in the model; the cell carries the message.
    """
    log = (result.workdir / "logfile.txt").read_text(errors="replace")
    cells = set(
        re.findall(
            r"(?:failed assertion \S+?\.|Assert failed in \S+: )"
            r"(_witness_\.check_\w+)",
            log,
        )
    )
    model = (result.workdir / "model" / "design.il").read_text(errors="replace")
    messages = set()
    for cell in cells:
        found = re.search(
            rf"cell \$check \\{re.escape(cell)}\n(?:(?!  end\n).*\n)*?"
            rf"\s*parameter \\FORMAT \"([^\"]*)\"",
            model,
        )
        if found:
            messages.add(found.group(1))
    return messages
