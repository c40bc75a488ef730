"""Formal harness of the host link's receiver (:class:`~spikeforge.hdl.host_link.HostLink`).

:class:`HostLinkHarness` elaborates a ``HostLink`` of a tiny network and feeds its ``rx``
stream with free bytes (``AnySeq``: any value, any timing, under the stream protocol: a byte
offered stays offered, unchanged, until taken) and free UART errors on ``rx_error``. The
transmitter's consumer is free too, but never holds ``tx.ready`` low for more than
``tx_stall`` cycles in a row. The neuron array inside is replaced by :class:`FreeArray`, a
model of its interface whose timing is free within bounds (see there): the array's own proofs
are in :mod:`spikeforge.sim.formal_array`; here it only matters that a step, a reset and a
configuration write end.

Properties (``check``):

``"live"``
    No wedge. The harness counts the cycles the input has been quiet (no byte offered, no
    UART error) and asserts that after :attr:`HostLinkHarness.quiet_bound` quiet cycles the
    receiver is idle: hunting for a frame start, with no UART error pending. The proof is a
    ranking function: :meth:`HostLinkHarness.rank` gives, for every state, a bound on the
    quiet cycles still needed to get idle; it is asserted to fall by at least one in every
    quiet cycle, and to be at most ``quiet_bound`` minus the quiet cycles already seen. With
    the invariants asserted beside it (counters within their ranges, the array model in step
    with the link's state) this is closed by k-induction, so it holds from every reachable
    state, after any input whatsoever.
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
import struct

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Const, Fragment, Module, Mux, Signal
from amaranth.lib import wiring

from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.hdl.host_link import RESPONSES, RX_STATES, TX_STATES, HostLink
from spikeforge.spec import protocol as p

from ..spec.limits import check_int
from .formal_neuron import _no_reset

__all__ = [
    "PROPERTIES",
    "REQUESTS",
    "tiny_network",
    "FreeArray",
    "HostLinkHarness",
    "failed_assertions",
]

PROPERTIES = ("live", "recover")
# The requests the recovery property sends: no payload, so the frame is fixed.
REQUESTS = (p.CMD_STATUS, p.CMD_IDENTIFY)


def tiny_network():
    """The network of the host-link proofs: 2 inputs, one LIF neuron, 4-bit membranes."""
    lif = dict(
        kind="lif", v_reset=0, v_rest=0, v_peak=6, t_ref=1, decay=[1], reset_mode="zero", bias=0
    )
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 4,
            "w_width": 3,
            "populations": [
                {"name": "inp", "kind": "input", "size": 2},
                dict(lif, name="A", size=1, v_th=1),
            ],
            "projections": [{"from": "inp", "to": "A", "weights": [[3], [-2]]}],
        }
    )


class FreeArray(wiring.Component):
    """The interface of a :class:`~spikeforge.hdl.array.NeuronArray` with free timing.

    Like the array: ``busy`` is low only when idle; while idle, ``reset_state`` starts a reset
    and else ``start`` starts a step; ``cfg.ready`` is ``~busy``; a step takes input events
    until one with ``end``, then pulses ``done`` in its last busy cycle; output spikes come
    only during a step, at most ``neurons`` of them. Free, within bounds: when ``spike_in``
    is ready (at the latest after ``in_stall`` cycles of an offered event), when ``done``
    comes (at the latest ``done_within`` cycles after ``end`` was taken), how long a reset
    takes (at most ``reset_within`` + 1 cycles), the spikes and their payload, ``cycles`` and
    ``timestep``.

    Parameters
    ----------
    array : NeuronArray
        The array replaced: its signature and widths are copied.
    neurons : int
    in_stall, done_within, reset_within : int
    """

    def __init__(self, array, *, neurons, in_stall, done_within, reset_within):
        self.pop_width = array.pop_width
        self.index_width = array.index_width
        self.cfg_data_width = array.cfg_data_width
        self.cfg_addr_width = array.cfg_addr_width
        self.neurons = neurons
        self.in_stall = in_stall
        self.done_within = done_within
        self.reset_within = reset_within
        super().__init__(dict(array.signature.members))
        self.running = Signal()
        self.ended = Signal()  # the step's `end` was taken
        self.resetting = Signal()
        self.spikes = Signal(range(neurons + 1))
        self.stalled = Signal(range(in_stall + 1))  # cycles an event waited so far
        self.since_end = Signal(range(done_within + 1))
        self.reset_cycles = Signal(range(reset_within + 1))

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        m.d.comb += [
            busy.eq(self.running | self.resetting),
            self.busy.eq(busy),
            self.cfg.ready.eq(~busy),
            self.cycles.eq(AnySeq(32)),
            self.timestep.eq(AnySeq(32)),
        ]

        with m.If(~busy & self.reset_state):
            m.d.sync += [self.resetting.eq(1), self.reset_cycles.eq(0)]
        with m.Elif(~busy & self.start):
            m.d.sync += [self.running.eq(1), self.ended.eq(0), self.spikes.eq(0)]

        with m.If(self.resetting):
            finish = Signal()
            m.d.comb += finish.eq(AnySeq(1) | (self.reset_cycles == self.reset_within))
            with m.If(finish):
                m.d.sync += self.resetting.eq(0)
            with m.Else():
                m.d.sync += self.reset_cycles.eq(self.reset_cycles + 1)

        sin = self.spike_in
        m.d.comb += sin.ready.eq(AnySeq(1) & self.running & ~self.ended)
        with m.If(sin.valid & ~sin.ready):
            m.d.sync += self.stalled.eq(self.stalled + 1)
        with m.Else():
            m.d.sync += self.stalled.eq(0)
        m.d.comb += Assume(
            ~sin.valid | sin.ready | (self.stalled != self.in_stall) | ~self.running | self.ended
        )
        with m.If(sin.valid & sin.ready & sin.payload.end):
            m.d.sync += [self.ended.eq(1), self.since_end.eq(0)]

        m.d.comb += self.done.eq(
            self.running & self.ended & (AnySeq(1) | (self.since_end == self.done_within))
        )
        with m.If(self.done):
            m.d.sync += self.running.eq(0)
        with m.Elif(self.running & self.ended):
            m.d.sync += self.since_end.eq(self.since_end + 1)

        out = self.spike_out
        m.d.comb += [
            out.valid.eq(AnySeq(1) & self.running & (self.spikes != self.neurons)),
            out.payload.as_value().eq(AnySeq(len(out.payload.as_value()))),
        ]
        with m.If(out.valid):
            m.d.sync += self.spikes.eq(self.spikes + 1)
        return m


def _check_properties(check):
    check = tuple(check)
    if not check or any(c not in PROPERTIES for c in check):
        raise TypeError(f"check must name some of {', '.join(PROPERTIES)}, not {check!r}")
    return check


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

    Attributes
    ----------
    link : HostLink
    quiet_bound : int
        Quiet cycles after which the receiver is idle, whatever came before.
    accept_bound : int
        Cycles from the start of a well-formed request (sent after ``quiet_bound`` quiet
        cycles) to the cycle that executes it.
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
    ):
        self.check = _check_properties(check)
        for name, value in [
            ("tx_stall", tx_stall),
            ("in_stall", in_stall),
            ("done_within", done_within),
            ("reset_within", reset_within),
        ]:
            check_int(name, value, 0, 255)
        if not 0 <= gap < timeout:
            raise ValueError(f"gap must be below the timeout {timeout}, not {gap!r}")
        if quiet is not None and (not isinstance(quiet, int) or quiet < 1):
            raise TypeError(f"quiet must be a positive integer, not {quiet!r}")
        net = tiny_network() if net is None else net
        plan = compile_network(net, 1)
        self.link = HostLink(plan, stages=1, timeout=timeout)
        real = self.link.array
        # Only its signature and widths are used. Elaborating it once marks it and its parts
        # as used, which Amaranth warns about otherwise.
        Fragment.get(real, None)
        self.array = FreeArray(
            real,
            neurons=self.link.neurons,
            in_stall=in_stall,
            done_within=done_within,
            reset_within=reset_within,
        )
        self.link.array = self.array
        self.timeout = timeout
        self.tx_stall = tx_stall
        self.gap = gap
        self.n_in = plan.n_inputs
        self.status_len = struct.calcsize(p.STATUS_FORMAT)
        self.max_len = max(len(self.link.identity), self.status_len, 2, 8 + 3 * self.link.neurons)
        self.tx_waited = Signal(range(tx_stall + 1))  # cycles tx.ready has been low
        self.resp_len = Signal(16)
        self.quiet_bound = self._max_rank()
        self.quiet = self.quiet_bound if quiet is None else quiet
        self.garbage = garbage
        self.invariants = invariants
        # The request's six bytes, each accepted at most `gap` cycles after the one before
        # (the first after the start), then CRC_FOLD, CHECK and EXEC; one cycle more when
        # gap is 0 and the first CRC byte meets LEN_CHECK, which takes no byte.
        self.accept_bound = 6 * (gap + 1) + 2 + (gap == 0)
        super().__init__({})

    # --- the ranking function ----------------------------------------------------------------
    # Costs in quiet cycles, with the harness's bounds. A byte of a response takes at most
    # `tx_stall + 2` cycles: chosen into byte_reg, offered while tx is not ready, taken.

    def _tx(self, length):
        # From TX_SYNC with an empty byte_reg: 6 + length bytes, then TX_END.
        return (6 + length) * (self.tx_stall + 2) + 1

    def _costs(self):
        a = self.array
        c = {}
        c["error"] = 1 + self._tx(2)
        c["flush0"] = self.timeout + 1 + c["error"]
        c["line"] = 1 + c["flush0"]  # a pending UART error: HUNT, then FLUSH
        c["step_done_max"] = 1 + self._tx(8 + 3 * self.link.neurons)
        c["step_wait0"] = a.done_within + 1 + c["step_done_max"]
        # In EXEC, a STEP of n indices: FEED_WAIT, then per index FEED (waiting at most
        # in_stall cycles) and FEED_WAIT, then `end` in FEED.
        c["step"] = lambda n: 2 + (a.in_stall + 1) + n * (a.in_stall + 2) + c["step_wait0"]
        c["cfg_write"] = 1 + self._tx(0)
        c["exec_max"] = max(
            1 + self._tx(len(self.link.identity)),
            1 + self._tx(self.status_len),
            1 + c["step_done_max"],
            3 + a.reset_within + self._tx(0),
            1 + max(c["cfg_write"], c["error"]),
            c["step"](self.n_in),
        )
        c["check"] = 1 + max(c["flush0"], c["error"], c["exec_max"])
        return c

    def _max_rank(self):
        # The largest value of `rank`: CRC_FOLD with a UART error pending dominates LEN_CHECK
        # (2 * line), EXEC and the transmitter states, each plus a pending error.
        c = self._costs()
        return max(
            1 + c["check"] + c["line"],
            2 * c["line"],
            self._tx(self.max_len) + c["line"],
            c["exec_max"] + c["line"],
        )

    def response_length(self, name, n_spk):
        """The payload length of response ``name`` (of :data:`RESPONSES`)."""
        return {
            "ERROR": 2,
            "IDENTIFY": len(self.link.identity),
            "STATUS": self.status_len,
            "STEP": 8 + 3 * n_spk,
            "CFG": 0,
            "RESET": 0,
        }[name]

    def rank(self, m, state, lb):
        """A bound on the quiet cycles until the link is idle, as a signal (0 when idle)."""
        link, a = self.link, self.array
        pr = link.probes
        c = self._costs()
        T, S = self.timeout, self.tx_stall
        B = S + 2
        # Wide enough for every state that meets the invariants (at most quiet_bound); one
        # that does not fails an invariant.
        rank = Signal(range(4 * self.quiet_bound), name="rank")
        extra = Mux(lb, c["line"], 0)
        timer, t_len = pr["timer"], pr["t_len"]
        # A byte in byte_reg is taken within tx_stall - tx_waited + 1 cycles.
        wait = Mux(pr["t_full"], S - self.tx_waited + 1, 0)
        n_spk = pr["n_spk"]
        with m.If(state["HUNT"]):
            m.d.comb += rank.eq(extra)
        for name in RX_STATES:
            with m.If(state[name]):
                m.d.comb += rank.eq(Mux(lb, c["line"], (T - timer) + 1 + c["error"]))
        with m.If(state["FLUSH"]):
            m.d.comb += rank.eq(Mux(lb, c["line"], (T - timer) + 1 + c["error"]))
        with m.If(state["LEN_CHECK"]):
            m.d.comb += rank.eq(c["line"] + extra)
        with m.If(state["CRC_FOLD"]):
            m.d.comb += rank.eq(1 + c["check"] + extra)
        with m.If(state["CHECK"]):
            m.d.comb += rank.eq(c["check"] + extra)
        with m.If(state["ERROR"]):
            m.d.comb += rank.eq(c["error"] + extra)
        with m.If(state["EXEC"]):
            code = pr["code"]
            exec_rank = Signal(range(4 * self.quiet_bound), name="exec_rank")
            with m.Switch(code):
                with m.Case(p.CMD_IDENTIFY):
                    m.d.comb += exec_rank.eq(1 + self._tx(len(link.identity)))
                with m.Case(p.CMD_STATUS):
                    m.d.comb += exec_rank.eq(1 + self._tx(self.status_len))
                with m.Case(p.CMD_LAST):
                    m.d.comb += exec_rank.eq(1 + (14 + 3 * n_spk) * B + 1)
                with m.Case(p.CMD_RESET):
                    m.d.comb += exec_rank.eq(3 + a.reset_within + self._tx(0))
                with m.Case(p.CMD_CFG):
                    m.d.comb += exec_rank.eq(1 + max(c["cfg_write"], c["error"]))
                with m.Case(p.CMD_STEP):
                    m.d.comb += exec_rank.eq(c["step"](pr["n_idx"]))
            m.d.comb += rank.eq(exec_rank + extra)
        with m.If(state["RESET_WAIT"]):
            m.d.comb += rank.eq(
                Mux(a.busy, (a.reset_within - a.reset_cycles) + 2, 1) + self._tx(0) + extra
            )
        with m.If(state["CFG_WRITE"]):
            m.d.comb += rank.eq(c["cfg_write"] + extra)
        remaining = pr["n_idx"] - pr["feed"]
        with m.If(state["FEED_WAIT"]):
            m.d.comb += rank.eq(c["step"](remaining) - 1 + extra)
        with m.If(state["FEED"]):
            m.d.comb += rank.eq(
                (a.in_stall - a.stalled)
                + 1
                + remaining * (a.in_stall + 2)
                + c["step_wait0"]
                + extra
            )
        with m.If(state["STEP_WAIT"]):
            m.d.comb += rank.eq((a.done_within - a.since_end) + 1 + c["step_done_max"] + extra)
        with m.If(state["STEP_DONE"]):
            m.d.comb += rank.eq(1 + (14 + 3 * n_spk) * B + 1 + extra)
        # Bytes still to be chosen into byte_reg, per state of the transmitter. TX_SYNC loads
        # t_len from the response chosen.
        to_send = {"TX_SYNC": 6, "TX_CODE": 5, "TX_LEN0": 4, "TX_LEN1": 3, "TX_PAYLOAD": 2}
        with m.Switch(pr["resp"]):
            for n, name in enumerate(RESPONSES):
                with m.Case(n):
                    m.d.comb += self.resp_len.eq(self.response_length(name, n_spk))
        for name in TX_STATES:
            if name == "TX_SYNC":
                with m.If(state[name]):
                    m.d.comb += rank.eq((6 + self.resp_len) * B + 1 + extra)
                continue
            with m.If(state[name]):
                if name in to_send:
                    left = to_send[name] + t_len
                else:
                    left = {"TX_CRC0": 2, "TX_CRC1": 1, "TX_END": 0}[name]
                m.d.comb += rank.eq(left * B + wait + 1 + extra)
        return rank

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        link, a = self.link, self.array
        # Elaborated here, so that its probes exist for the assertions.
        m.submodules.link = Fragment.get(link, platform)
        pr = link.probes
        state = pr["state"]
        lb = pr["line_bad"]
        live = "live" in self.check or "recover" in self.check
        recover = "recover" in self.check

        # --- the consumer of tx: ready at least once in tx_stall + 1 cycles ---------------------
        m.d.comb += link.tx.ready.eq(AnySeq(1))
        with m.If(link.tx.ready):
            m.d.sync += self.tx_waited.eq(0)
        with m.Else():
            m.d.sync += self.tx_waited.eq(self.tx_waited + 1)
        m.d.comb += Assume(link.tx.ready | (self.tx_waited != self.tx_stall))

        # --- the producer of rx: free bytes under the stream protocol, or the sequencer -------
        rx = link.rx
        held = Signal()
        last = Signal(8)
        free_valid = Signal()
        free_byte = Signal(8)
        error = Signal()
        m.d.comb += [free_valid.eq(AnySeq(1)), free_byte.eq(AnySeq(8))]
        m.d.sync += [held.eq(rx.valid & ~rx.ready), last.eq(rx.payload)]
        quiet = Signal()
        m.d.comb += [link.rx_error.eq(error), quiet.eq(~rx.valid & ~error)]

        if recover:
            GARBAGE, QUIET, SEND = 0, 1, 2
            phase = Signal(range(3), name="phase", init=GARBAGE if self.garbage else QUIET)
            which = Signal(name="which")
            m.d.comb += which.eq(AnyConst(1))
            frames = [p.encode_frame(cmd) for cmd in REQUESTS]
            assert all(len(f) == 6 for f in frames)
            cmd = Mux(which, REQUESTS[1], REQUESTS[0])
            sent = Signal(range(7), name="sent")
            gap_count = Signal(range(max(self.gap, 3) + 1), name="gap_count")
            quiet_count = Signal(range(self.quiet + 1), name="quiet_count")
            waited = Signal(range(self.accept_bound + 2), name="waited")
            accepted = Signal(name="accepted")
            frame_byte = Signal(8)
            with m.Switch(sent):
                for k in range(6):
                    with m.Case(k):
                        m.d.comb += frame_byte.eq(Mux(which, frames[1][k], frames[0][k]))
            with m.Switch(phase):
                with m.Case(GARBAGE):
                    m.d.comb += [
                        rx.valid.eq(held | free_valid),
                        rx.payload.eq(Mux(held, last, free_byte)),
                        error.eq(AnySeq(1)),
                    ]
                    # Only when no byte is left waiting: an offered byte stays offered.
                    with m.If(AnySeq(1) & ~(rx.valid & ~rx.ready)):
                        m.d.sync += [phase.eq(QUIET), quiet_count.eq(0)]
                with m.Case(QUIET):
                    with m.If(quiet_count == self.quiet - 1):
                        m.d.sync += [
                            phase.eq(SEND),
                            sent.eq(0),
                            gap_count.eq(0),
                            waited.eq(0),
                            accepted.eq(0),
                        ]
                    with m.Else():
                        m.d.sync += quiet_count.eq(quiet_count + 1)
                with m.Case(SEND):
                    offer = held | free_valid | (gap_count >= self.gap)
                    m.d.comb += [rx.valid.eq((sent != 6) & offer), rx.payload.eq(frame_byte)]
                    with m.If(rx.valid & rx.ready):
                        m.d.sync += [sent.eq(sent + 1), gap_count.eq(0)]
                    with m.Elif(gap_count != max(self.gap, 3)):
                        m.d.sync += gap_count.eq(gap_count + 1)
                    with m.If(waited != self.accept_bound + 1):
                        m.d.sync += waited.eq(waited + 1)
                    with m.If(link.frame_ok):
                        m.d.sync += accepted.eq(1)
        else:
            m.d.comb += [
                rx.valid.eq(held | free_valid),
                rx.payload.eq(Mux(held, last, free_byte)),
                error.eq(AnySeq(1)),
            ]

        # (test, message) pairs; the messages of the claims start with "live:" or "recover:",
        # those of the invariants the induction needs with "inv:" or "seq:".
        asserts = []

        def check(test, message):
            return test, message

        if live:
            rank = self.rank(m, state, lb)
            idle = state["HUNT"] & ~lb
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
            in_tx = Const(0)
            for name in TX_STATES:
                in_tx = in_tx | state[name]
            asserts += [
                # The claim.
                check((quiet_for != bound) | idle, "live: not idle after the quiet bound"),
                # The ranking function falls in quiet cycles and bounds the rest.
                check(~idle | (rank == 0), "live: rank of idle"),
                check(idle | (rank != 0), "live: zero rank when busy"),
                check(~was_quiet | was_idle | (rank < last_rank), "live: rank did not fall"),
                check(~was_quiet | ~was_idle | idle, "live: left idle without input"),
                check(idle | (quiet_for + rank <= bound), "live: rank above the bound"),
                check(quiet_for <= bound, "inv: quiet_for"),
                # Invariants the induction needs.
                check(~pr["t_full"] | (in_tx & ~state["TX_SYNC"]), "inv: t_full"),
                check(pr["t_len"] <= self.max_len, "inv: t_len"),
                check(~state["TX_PAYLOAD"] | (pr["t_len"] != 0), "inv: t_len in payload"),
            ]
            timed = Const(0)
            for name in (*RX_STATES, "FLUSH", "LEN_CHECK"):
                timed = timed | state[name]
            asserts.append(check(~timed | (pr["timer"] <= self.timeout), "inv: timer"))
            known = Const(0)
            for cmd_ in p.COMMANDS:
                known = known | (pr["code"] == cmd_)
            after_len = Const(0)
            for name in ("PAYLOAD", "CRC0", "CRC1", "CRC_FOLD", "CHECK", "EXEC"):
                after_len = after_len | state[name]
            asserts.append(check(~after_len | known, "inv: command known"))
            asserts.append(
                check(
                    Mux(
                        state["EXEC"],
                        (pr["start"] == (pr["code"] == p.CMD_STEP))
                        & (pr["reset"] == (pr["code"] == p.CMD_RESET)),
                        ~pr["start"] & ~pr["reset"],
                    ),
                    "inv: start and reset",
                )
            )
            # The STEP indices: LEN_CHECK took at most 2 n_in bytes.
            n_idx, half, left = pr["n_idx"], pr["half"], pr["left"]
            taken = n_idx + pr["index_ready"]
            asserts += [
                check(taken <= self.n_in, "inv: n_idx"),
                check(~state["PAYLOAD"] | (left != 0), "inv: left"),
                check(
                    ~(state["PAYLOAD"] & (pr["code"] == p.CMD_STEP))
                    | (2 * taken + half + left <= 2 * self.n_in),
                    "inv: step payload",
                ),
                check(~(state["FEED"] | state["FEED_WAIT"]) | (pr["feed"] <= n_idx), "inv: feed"),
                check(~pr["index_ready"] | state["PAYLOAD"] | state["CRC0"], "inv: index check"),
            ]
            # The array model in step with the link.
            feeding = state["FEED"] | state["FEED_WAIT"]
            asserts += [
                check(~(a.running & a.resetting), "inv: array"),
                check(a.stalled <= a.in_stall, "inv: in_stall"),
                check(self.tx_waited <= self.tx_stall, "inv: tx_stall"),
                check(a.since_end <= a.done_within, "inv: since_end"),
                check(a.reset_cycles <= a.reset_within, "inv: reset_cycles"),
                check(~feeding | (a.running & ~a.ended), "inv: feeding"),
                check(~state["STEP_WAIT"] | (a.running & a.ended), "inv: step wait"),
                check(~state["RESET_WAIT"] | ~a.running, "inv: reset wait"),
                check(
                    feeding | state["STEP_WAIT"] | state["RESET_WAIT"] | ~a.busy, "inv: array idle"
                ),
                check(~a.running | (pr["n_spk"] == a.spikes), "inv: spikes"),
                check(pr["n_spk"] <= link.neurons, "inv: n_spk"),
            ]

        if recover:
            in_send = phase == SEND
            before = in_send & ~accepted
            partial = [[p.CRC_INIT] * 2 for _ in frames]
            for f, crcs in zip(frames, partial):
                for k in range(2, 7):
                    crcs.append(p.crc16(f[1:k]))
            asserts += [
                check(~in_send | ~link.frame_error, "recover: error frame"),
                check(
                    ~in_send | accepted | link.frame_ok | (waited < self.accept_bound),
                    "recover: not accepted in time",
                ),
                check(
                    ~(in_send & link.frame_ok) | ((sent == 6) & (pr["code"] == cmd)),
                    "recover: executed something else",
                ),
                # Invariants the induction needs.
                check(
                    ~(phase == QUIET) | ((quiet_for >= quiet_count) & (quiet_count < self.quiet)),
                    "inv: quiet",
                ),
                check(~(phase == QUIET) | ~held, "inv: quiet held"),
                check(~(in_send & (sent == 0)) | (state["HUNT"] & ~lb), "seq: 0"),
                check(~in_send | (sent <= 6), "seq: sent"),
                check(
                    ~(in_send & (sent < 6))
                    | (gap_count <= Mux(sent == 4, max(self.gap, 1), self.gap)),
                    "seq: gap",
                ),
                # Byte k is taken at most k * (gap + 1) - 1 cycles after the start (one more
                # from the fifth on when gap is 0: LEN_CHECK takes no byte).
                check(
                    ~(in_send & ~accepted)
                    | (
                        waited
                        <= sent * (self.gap + 1) + gap_count + Mux(sent >= 5, int(self.gap == 0), 0)
                    ),
                    "seq: waited",
                ),
            ]
            # EXEC, TX_SYNC (which loads the length), then TX_CODE sends the code of `resp`.
            ok_d = Signal()
            ok_dd = Signal()
            m.d.sync += [ok_d.eq(in_send & link.frame_ok), ok_dd.eq(ok_d)]
            answer = Mux(which, RESPONSES.index("IDENTIFY"), RESPONSES.index("STATUS"))
            asserts += [
                check(
                    ~ok_d | (state["TX_SYNC"] & (pr["resp"] == answer)), "recover: wrong response"
                ),
                check(
                    ~ok_dd
                    | (
                        state["TX_CODE"]
                        & (pr["t_len"] == Mux(which, len(link.identity), self.status_len))
                    ),
                    "recover: wrong length",
                ),
            ]
            expect = {1: "CODE", 2: "LEN0", 3: "LEN1", 5: "CRC1"}
            for k, name in expect.items():
                asserts.append(
                    check(
                        ~(in_send & (sent == k)) | (state[name] & ~lb & (pr["timer"] == gap_count)),
                        f"seq: {k}",
                    )
                )
            asserts += [
                check(
                    ~(in_send & (sent == 4))
                    | ~lb
                    & (
                        ((gap_count == 0) & state["LEN_CHECK"] & (pr["byte_reg"] == 0))
                        | (
                            (gap_count != 0)
                            & state["CRC0"]
                            & (pr["timer"] == gap_count - 1)
                            & ~pr["bad_payload"]
                            & ~pr["index_ready"]
                        )
                    ),
                    "seq: 4",
                ),
                check(
                    ~(in_send & (sent == 6) & (gap_count == 0)) | state["CRC_FOLD"], "seq: 6 fold"
                ),
                check(~(in_send & (sent == 6) & (gap_count == 1)) | state["CHECK"], "seq: 6"),
                check(~(in_send & (sent == 6) & (gap_count == 2)) | state["EXEC"], "seq: 6 exec"),
                check(~(in_send & (sent == 6) & (gap_count >= 3)) | accepted, "seq: 6 done"),
                check(~(in_send & accepted) | ((sent == 6) & (gap_count >= 3)), "seq: accepted"),
                check(
                    ~(before & (sent >= 5)) | (~pr["bad_payload"] & ~pr["index_ready"]),
                    "seq: payload",
                ),
                check(~(before & (sent >= 2)) | (pr["code"] == cmd), "seq: code"),
                check(~(before & (sent >= 3)) | (pr["lo_byte"] == 0), "seq: len"),
                check(~in_send | ~lb, "seq: no UART error"),
                check(~(in_send & accepted) | in_tx | idle, "seq: answering"),
                check(
                    ~(in_send & (sent == 1)) | (~pr["fold"] & (pr["crc"] == p.CRC_INIT)),
                    "seq: crc 1",
                ),
            ]
            for k in range(2, 7):
                for n, f in enumerate(frames):
                    here = in_send & (sent == k) & (which == n)
                    asserts += [
                        check(
                            ~(here & (gap_count == 0))
                            | (
                                pr["fold"]
                                & (pr["byte_reg"] == f[k - 1])
                                & (pr["crc"] == partial[n][k - 1])
                            ),
                            f"seq: crc {k} folding",
                        ),
                        check(
                            ~(here & (gap_count != 0) & ((sent != 6) | (gap_count == 1)))
                            | (~pr["fold"] & (pr["crc"] == partial[n][k])),
                            f"seq: crc {k}",
                        ),
                    ]
        m.d.comb += [
            Assert(test, message)
            for test, message in asserts
            if self.invariants or message.startswith(("live:", "recover:"))
        ]
        return m


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
