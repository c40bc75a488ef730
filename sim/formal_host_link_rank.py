"""The ranking function of the host link's ``"live"`` proof (:mod:`.formal_host_link`).

For every state of the link, an upper bound on the quiet cycles (no byte offered, no UART
error) still needed to get idle: in a receive state ``timeout - timer + 1`` plus the error
answer; in the transmitter the bytes still to send times ``tx_stall + 2`` plus the wait of the
byte on offer; in the step states the feeding and the array model's bounds; while a STEPS
frame runs the steps left, the record held and the sender's response; a pending UART error
adds a flush and an error answer. Costs in quiet cycles, with the harness's bounds. A byte of a
response takes at most ``tx_stall + 2`` cycles: chosen into the transmitter's register, offered
while ``tx`` is not ready, taken.
"""

import struct

from amaranth.hdl import Mux, Signal

from spikeforge.hdl.host_link import RESPONSES, TX_STATES
from spikeforge.hdl.host_link_rx import FRAME_STATES
from spikeforge.spec import protocol as p

__all__ = ["Ranking"]


class Ranking:
    """The ranking function of a :class:`~spikeforge.hdl.host_link.HostLink` under a harness.

    Parameters
    ----------
    link : HostLink
        With the array model (:class:`~spikeforge.sim.formal_host_link_model.FreeArray`) in
        place of its array.
    tx_stall : int
        Cycles in a row the consumer of ``tx`` may stall.
    tx_waited : Signal
        The harness's count of those cycles.

    Attributes
    ----------
    bound : int
        The largest rank: the quiet cycles after which the link is idle, whatever came before.
    max_len : int
        The longest response payload.
    """

    def __init__(self, link, *, tx_stall, tx_waited):
        self.array = link.array
        self.timeout = link.timeout
        self.n_in = link.plan.n_inputs
        self.neurons = link.neurons
        self.identity_len = len(link.identity)
        self.status_len = struct.calcsize(p.STATUS_FORMAT)
        self.max_len = max(self.identity_len, self.status_len, 2, 8 + 3 * self.neurons)
        self.tx_stall = tx_stall
        self.tx_waited = tx_waited
        self.steps = link.steps
        if self.steps and self.n_in > 8:
            # The STEPS part counts one bitmap byte a step.
            raise ValueError(f"the STEPS ranking needs at most 8 inputs, not {self.n_in}")
        self.frame = link.receiver.frame.payload
        self.resp_len = Signal(16)
        self.bound = self._max_rank()

    def _tx(self, length):
        # From ANSWER, the transmitter idle: 6 + length bytes, then TX_END.
        return (6 + length) * (self.tx_stall + 2) + 1

    def _costs(self):
        a = self.array
        c = {}
        c["error"] = 1 + self._tx(2)
        c["flush0"] = self.timeout + 1 + c["error"]
        c["line"] = 1 + c["flush0"]  # a pending UART error: HUNT, then FLUSH
        c["step_done_max"] = 1 + self._tx(8 + 3 * self.neurons)
        c["step_wait0"] = a.done_within + 1 + c["step_done_max"]
        # In EXEC, a STEP of n indices: FEED_WAIT, then per index FEED (waiting at most
        # in_stall cycles) and FEED_WAIT, then `end` in FEED.
        c["step"] = lambda n: 2 + (a.in_stall + 1) + n * (a.in_stall + 2) + c["step_wait0"]
        if self.steps:
            # With STEPS the events go through a FIFO of two: per event FEED_WAIT, FEED with
            # the read settling, FEED offering (it waits only while the FIFO is full, which
            # the FIFO's term below pays for), and at most in_stall + 1 cycles in the FIFO.
            c["item"] = a.in_stall + 4
            c["step"] = lambda n: 1 + (n + 1) * c["item"] + c["step_wait0"]
        if self.steps:
            self._steps_costs(c)
        c["cfg_write"] = 1 + self._tx(0)
        c["exec_max"] = max(
            1 + self._tx(self.identity_len),
            1 + self._tx(self.status_len),
            1 + c["step_done_max"],
            3 + a.reset_within + self._tx(0),
            1 + max(c["cfg_write"], c["error"]),
            c["step"](self.n_in),
            *([1 + c["tail"](255)] if self.steps else []),
        )
        c["check"] = 1 + max(c["flush0"], c["error"], c["exec_max"])
        return c

    def _steps_costs(self, c):
        """The costs of a STEPS frame's run (bitmaps of one byte a step; the frame's steps
        need not be well-formed: a bitmap byte has at most 8 inputs set).

        A step from S_NEXT: S_NEXT, S_READ, S_GOT, then per input S_BITS and S_OFFER and its
        time in the FIFO (``item``), the end the same, S_WAIT (``done_within`` + 1) and
        S_DONE. Its response from the sender's R_IDLE that takes its record (``record``, at
        most ``4 + 2 * neurons`` payload bytes). ``tail(k)``: ``k`` steps and their
        responses, one after the other, then S_DRAIN's cycle: an upper bound, as the sender
        and the executor run beside each other.
        """
        a = self.array
        c["s_wait"] = a.done_within + 2
        c["record"] = lambda n: 1 + (6 + 4 + 2 * n) * (self.tx_stall + 2) + 1
        c["record_max"] = c["record"](self.neurons)
        c["s_step"] = 3 + 9 * c["item"] + c["s_wait"]
        per_step = c["s_step"] + c["record_max"]
        c["tail"] = lambda k: k * per_step + 1
        self.steps_max = c["tail"](255)

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
            "IDENTIFY": self.identity_len,
            "STATUS": self.status_len,
            "STEP": 8 + 3 * n_spk,
            "CFG": 0,
            "RESET": 0,
        }[name]

    def _feed_with_fifo(self, m, u, rank, c, remaining, extra):
        """The ranks of FEED_WAIT, FEED and STEP_WAIT with STEPS: the events still to offer
        (``remaining`` indices and the end), and those in the FIFO, each taken by the array
        within ``in_stall + 1`` cycles (the one at its head has waited ``stalled``)."""
        a, state, ex = self.array, u.state, u.ex
        level = ex["in_fifo"].level
        queued = level * (a.in_stall + 1) - a.stalled
        after = c["step_wait0"] + queued + extra
        item = c["item"]
        with m.If(state["FEED_WAIT"]):
            m.d.comb += rank.eq((remaining + 1) * item + after)
        with m.If(state["FEED"]):
            # Settling: one cycle less than FEED_WAIT; offering: two.
            m.d.comb += rank.eq(remaining * item + Mux(ex["settled"], item - 1, item - 2) + after)
        with m.If(state["STEP_WAIT"]):
            # Before the array took `end`: the FIFO's events, then the step's end; after:
            # as without the FIFO.
            m.d.comb += rank.eq(
                Mux(a.ended, a.done_within - a.since_end, a.done_within)
                + 1
                + c["step_done_max"]
                + queued
                + extra
            )

    def signal(self, m, u):
        """The rank, a bound on the quiet cycles until the link is idle (0 when idle).

        ``u`` holds the units' probes (``rx``, ``ex``, ``tx``), their states merged
        (``state``) and the receiver's pending UART error (``lb``). While the executor is idle
        the receiver's state says how far the link is; then the executor's, and while it
        sends, the transmitter's.
        """
        a = self.array
        state, lb = u.state, u.lb
        c = self._costs()
        T, S = self.timeout, self.tx_stall
        B = S + 2
        # Wide enough for every state that meets the invariants (at most quiet_bound); one
        # that does not fails an invariant.
        rank = Signal(range(4 * self.bound), name="rank")
        extra = Mux(lb, c["line"], 0)
        timer, t_len = u.rx["timer"], u.tx["t_len"]
        # A byte on offer to tx is taken within tx_stall - tx_waited + 1 cycles.
        wait = Mux(u.tx["t_full"], S - self.tx_waited + 1, 0)
        n_spk = u.ex["n_spk"]
        with m.If(state["HUNT"]):
            m.d.comb += rank.eq(extra)
        for name in (*FRAME_STATES, "FLUSH"):
            with m.If(state[name]):
                m.d.comb += rank.eq(Mux(lb, c["line"], (T - timer) + 1 + c["error"]))
        with m.If(state["LEN_CHECK"]):
            m.d.comb += rank.eq(c["line"] + extra)
        with m.If(state["CRC_FOLD"]):
            m.d.comb += rank.eq(1 + c["check"] + extra)
        with m.If(state["CHECK"]):
            m.d.comb += rank.eq(c["check"] + extra)
        # An error frame on offer to the idle executor, or one the executor found.
        with m.If((state["HOLD"] & state["IDLE"]) | state["ERROR"]):
            m.d.comb += rank.eq(c["error"] + extra)
        with m.If(state["EXEC"]):
            exec_rank = Signal(range(4 * self.bound), name="exec_rank")
            with m.Switch(u.rx["code"]):
                with m.Case(p.CMD_IDENTIFY):
                    m.d.comb += exec_rank.eq(1 + self._tx(self.identity_len))
                with m.Case(p.CMD_STATUS):
                    m.d.comb += exec_rank.eq(1 + self._tx(self.status_len))
                with m.Case(p.CMD_LAST):
                    m.d.comb += exec_rank.eq(1 + (14 + 3 * n_spk) * B + 1)
                with m.Case(p.CMD_RESET):
                    m.d.comb += exec_rank.eq(3 + a.reset_within + self._tx(0))
                with m.Case(p.CMD_CFG):
                    m.d.comb += exec_rank.eq(1 + max(c["cfg_write"], c["error"]))
                with m.Case(p.CMD_STEP):
                    m.d.comb += exec_rank.eq(c["step"](u.rx["n_idx"]))
                if self.steps:
                    # For the array's timestep: the run; else ERROR.
                    with m.Case(p.CMD_STEPS):
                        m.d.comb += exec_rank.eq(
                            Mux(
                                u.ex["steps_go"],
                                1 + c["tail"](self.frame.steps),
                                1 + c["error"],
                            )
                        )
            m.d.comb += rank.eq(exec_rank + extra)
        with m.If(state["RESET_WAIT"]):
            m.d.comb += rank.eq(
                Mux(a.busy, (a.reset_within - a.reset_cycles) + 2, 1) + self._tx(0) + extra
            )
        with m.If(state["CFG_WRITE"]):
            m.d.comb += rank.eq(c["cfg_write"] + extra)
        remaining = u.rx["n_idx"] - u.ex["feed"]
        if self.steps:
            self._feed_with_fifo(m, u, rank, c, remaining, extra)
        else:
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
        # ANSWER offers the header of the response chosen; the transmitter takes it at once.
        with m.Switch(u.ex["resp"]):
            for n, name in enumerate(RESPONSES):
                with m.Case(n):
                    m.d.comb += self.resp_len.eq(self.response_length(name, n_spk))
        with m.If(state["ANSWER"]):
            m.d.comb += rank.eq((6 + self.resp_len) * B + 1 + extra)
        # Bytes still to be chosen into the transmitter's register, per state.
        tx_rank = Signal(range(4 * self.bound), name="tx_rank")
        to_send = {"TX_CODE": 5, "TX_LEN0": 4, "TX_LEN1": 3, "TX_PAYLOAD": 2}
        for name in TX_STATES[1:]:
            with m.If(state[name]):
                if name in to_send:
                    left = to_send[name] + t_len
                else:
                    left = {"TX_CRC0": 2, "TX_CRC1": 1, "TX_END": 0}[name]
                m.d.comb += tx_rank.eq(left * B + wait + 1)
        with m.If(~state["TX_IDLE"]):
            m.d.comb += rank.eq(tx_rank + extra)
        if self.steps:
            self.stream_rank = self._run(m, u, c, tx_rank)
            with m.If(u.ex["streaming"]):
                m.d.comb += rank.eq(self.stream_rank + extra)
        return rank

    def _run(self, m, u, c, tx_rank):
        """The rank of a STEPS frame's run (without a pending UART error): the executor's
        steps still to run, the record held, and the sender's response (its header, or the
        transmitter's bytes). Each is a bound of its own work done alone; the executor waits
        (in S_NEXT, S_DRAIN) only while the sender's part falls."""
        a, state, ex = self.array, u.state, u.ex
        B = self.tx_stall + 2
        run, sender, record = ex["run"], ex["sender"], ex["record"]
        steps_left = run["steps_left"]
        item = c["item"]
        level = ex["in_fifo"].level
        queued = level * (a.in_stall + 1) - a.stalled
        later = c["record_max"] + c["tail"](steps_left - 1)  # after this step's S_DONE
        bits = run["bits"]
        inputs = sum(bits[k] for k in range(len(bits)))  # the byte's inputs not offered yet
        run_rank = Signal(range(4 * self.bound), name="run_rank")
        ranks = {
            "S_NEXT": c["tail"](steps_left),
            "S_READ": c["s_step"] - 1 + later,
            "S_GOT": c["s_step"] - 2 + queued + later,
            "S_BITS": (inputs + 1) * item + queued + c["s_wait"] + later,
            "S_OFFER": Mux(run["item_end"], 0, inputs + 1) * item
            + (item - 1)
            + queued
            + c["s_wait"]
            + later,
            "S_WAIT": Mux(a.ended, a.done_within - a.since_end, a.done_within) + 2 + queued + later,
            "S_DONE": 1 + later,
            "S_DRAIN": 1,
        }
        for name, value in ranks.items():
            with m.If(state[name]):
                m.d.comb += run_rank.eq(value)
        held_count = record["held"][32:]
        stream_rank = Signal(range(4 * self.bound), name="stream_rank")
        m.d.comb += stream_rank.eq(
            run_rank
            + Mux(record["full"], c["record"](held_count), 0)
            + Mux(sender["R_HEAD"], (6 + ex["sender_regs"]["length"]) * B + 1, 0)
            + Mux(sender["R_SEND"], tx_rank, 0)
        )
        return stream_rank
