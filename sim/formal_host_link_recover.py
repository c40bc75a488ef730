"""The ``"recover"`` property of the host-link harness (:mod:`.formal_host_link`).

A sequencer lets the free input run for as long as the solver likes, then keeps the line quiet,
then sends one well-formed STATUS or IDENTIFY request; the claims say that it is executed in
time and answered, the invariants pin the request's path through the receiver (its state, timer
and running CRC at every byte).
"""

from types import SimpleNamespace

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Mux, Signal

from spikeforge.hdl.host_link import RESPONSES
from spikeforge.spec import protocol as p

__all__ = ["REQUESTS", "Recovery"]

# The requests the recovery property sends: no payload, so the frame is fixed.
REQUESTS = (p.CMD_STATUS, p.CMD_IDENTIFY)


class Recovery:
    """The sequencer and the claims of ``"recover"``.

    Parameters
    ----------
    link : HostLink
    gap : int
        Idle cycles at most before each byte of the request.
    quiet : int
        Quiet cycles before the request.
    garbage : bool
        Free input before the quiet cycles.
    status_len : int
        The STATUS response's payload length.

    Attributes
    ----------
    accept_bound : int
        Cycles from the start of the request to the cycle that executes it.
    """

    def __init__(self, link, *, gap, quiet, garbage, status_len):
        self.link = link
        self.gap = gap
        self.quiet = quiet
        self.garbage = garbage
        self.status_len = status_len
        # The request's six bytes, each accepted at most `gap` cycles after the one before
        # (the first after the start), then CRC_FOLD, CHECK and EXEC; one cycle more when
        # gap is 0 and the first CRC byte meets LEN_CHECK, which takes no byte.
        self.accept_bound = 6 * (gap + 1) + 2 + (gap == 0)

    def drive(self, m, held, free, free_valid):
        """Drive the link's ``rx`` and ``rx_error``: ``free`` (the free producer's statements)
        first, then quiet, then the request. ``held``: a byte offered last cycle was not taken;
        ``free_valid``: the free producer's offer. Returns the sequencer's signals."""
        rx = self.link.rx
        GARBAGE, QUIET, SEND = 0, 1, 2
        s = SimpleNamespace(GARBAGE=GARBAGE, QUIET=QUIET, SEND=SEND)
        s.phase = Signal(range(3), name="phase", init=GARBAGE if self.garbage else QUIET)
        s.which = Signal(name="which")
        m.d.comb += s.which.eq(AnyConst(1))
        s.frames = [p.encode_frame(cmd) for cmd in REQUESTS]
        assert all(len(f) == 6 for f in s.frames)
        s.cmd = Mux(s.which, REQUESTS[1], REQUESTS[0])
        s.sent = Signal(range(7), name="sent")
        s.gap_count = Signal(range(max(self.gap, 3) + 1), name="gap_count")
        s.quiet_count = Signal(range(self.quiet + 1), name="quiet_count")
        s.waited = Signal(range(self.accept_bound + 2), name="waited")
        s.accepted = Signal(name="accepted")
        frame_byte = Signal(8)
        with m.Switch(s.sent):
            for k in range(6):
                with m.Case(k):
                    m.d.comb += frame_byte.eq(Mux(s.which, s.frames[1][k], s.frames[0][k]))
        with m.Switch(s.phase):
            with m.Case(GARBAGE):
                m.d.comb += free
                # Only when no byte is left waiting: an offered byte stays offered.
                with m.If(AnySeq(1) & ~(rx.valid & ~rx.ready)):
                    m.d.sync += [s.phase.eq(QUIET), s.quiet_count.eq(0)]
            with m.Case(QUIET):
                with m.If(s.quiet_count == self.quiet - 1):
                    m.d.sync += [
                        s.phase.eq(SEND),
                        s.sent.eq(0),
                        s.gap_count.eq(0),
                        s.waited.eq(0),
                        s.accepted.eq(0),
                    ]
                with m.Else():
                    m.d.sync += s.quiet_count.eq(s.quiet_count + 1)
            with m.Case(SEND):
                offer = held | free_valid | (s.gap_count >= self.gap)
                m.d.comb += [rx.valid.eq((s.sent != 6) & offer), rx.payload.eq(frame_byte)]
                with m.If(rx.valid & rx.ready):
                    m.d.sync += [s.sent.eq(s.sent + 1), s.gap_count.eq(0)]
                with m.Elif(s.gap_count != max(self.gap, 3)):
                    m.d.sync += s.gap_count.eq(s.gap_count + 1)
                with m.If(s.waited != self.accept_bound + 1):
                    m.d.sync += s.waited.eq(s.waited + 1)
                with m.If(self.link.frame_ok):
                    m.d.sync += s.accepted.eq(1)
        return s

    def claims(self, m, u, s, held, quiet_for):
        """The ``"recover"`` claims, and the invariants of the request's path through the
        receiver: ``u`` holds the units' probes, ``s`` the sequencer's signals (:meth:`drive`),
        ``quiet_for`` counts the quiet cycles."""
        state, rx, lb, link = u.state, u.rx, u.lb, self.link
        in_send = s.phase == s.SEND
        before = in_send & ~s.accepted
        sent, gap_count = s.sent, s.gap_count
        asserts = [
            (~in_send | ~link.frame_error, "recover: error frame"),
            (
                ~in_send | s.accepted | link.frame_ok | (s.waited < self.accept_bound),
                "recover: not accepted in time",
            ),
            (
                ~(in_send & link.frame_ok) | ((sent == 6) & (rx["code"] == s.cmd)),
                "recover: executed something else",
            ),
            (
                ~(s.phase == s.QUIET)
                | ((quiet_for >= s.quiet_count) & (s.quiet_count < self.quiet)),
                "inv: quiet",
            ),
            (~(s.phase == s.QUIET) | ~held, "inv: quiet held"),
            (~(in_send & (sent == 0)) | u.idle, "seq: 0"),
            (~in_send | (sent <= 6), "seq: sent"),
            (
                ~(in_send & (sent < 6)) | (gap_count <= Mux(sent == 4, max(self.gap, 1), self.gap)),
                "seq: gap",
            ),
            # Byte k is taken at most k * (gap + 1) - 1 cycles after the start (one more from
            # the fifth on when gap is 0: LEN_CHECK takes no byte).
            (
                ~before
                | (
                    s.waited
                    <= sent * (self.gap + 1) + gap_count + Mux(sent >= 5, int(self.gap == 0), 0)
                ),
                "seq: waited",
            ),
        ]
        # EXEC, ANSWER (which offers the header), then TX_CODE sends the code.
        ok_d = Signal()
        ok_dd = Signal()
        m.d.sync += [ok_d.eq(in_send & link.frame_ok), ok_dd.eq(ok_d)]
        answer = Mux(s.which, RESPONSES.index("IDENTIFY"), RESPONSES.index("STATUS"))
        length = Mux(s.which, len(link.identity), self.status_len)
        asserts += [
            (~ok_d | (state["ANSWER"] & (u.ex["resp"] == answer)), "recover: wrong response"),
            (~ok_dd | (state["TX_CODE"] & (u.tx["t_len"] == length)), "recover: wrong length"),
        ]
        for k, name in {1: "CODE", 2: "LEN0", 3: "LEN1", 5: "CRC1"}.items():
            asserts.append(
                (
                    ~(in_send & (sent == k)) | (state[name] & ~lb & (rx["timer"] == gap_count)),
                    f"seq: {k}",
                )
            )
        no_index = ~rx["bad_payload"] & ~rx["index_ready"]
        asserts += [
            (
                ~(in_send & (sent == 4))
                | ~lb
                & (
                    ((gap_count == 0) & state["LEN_CHECK"] & (rx["byte_reg"] == 0))
                    | ((gap_count != 0) & state["CRC0"] & (rx["timer"] == gap_count - 1) & no_index)
                ),
                "seq: 4",
            ),
            (~(in_send & (sent == 6) & (gap_count == 0)) | state["CRC_FOLD"], "seq: 6 fold"),
            (~(in_send & (sent == 6) & (gap_count == 1)) | state["CHECK"], "seq: 6"),
            (~(in_send & (sent == 6) & (gap_count == 2)) | state["EXEC"], "seq: 6 exec"),
            (~(in_send & (sent == 6) & (gap_count >= 3)) | s.accepted, "seq: 6 done"),
            (~(in_send & s.accepted) | ((sent == 6) & (gap_count >= 3)), "seq: accepted"),
            (~(before & (sent >= 5)) | no_index, "seq: payload"),
            (~(before & (sent >= 2)) | (rx["code"] == s.cmd), "seq: code"),
            (~(before & (sent >= 3)) | (rx["lo_byte"] == 0), "seq: len"),
            (~in_send | ~lb, "seq: no UART error"),
            (~(in_send & s.accepted) | u.answering | u.idle, "seq: answering"),
            (
                ~(in_send & (sent == 1)) | (~rx["fold"] & (rx["crc"] == p.CRC_INIT)),
                "seq: crc 1",
            ),
        ]
        asserts += self._request_crc(s, in_send, rx)
        return asserts

    def _request_crc(self, s, in_send, rx):
        """The receiver's running CRC at every byte of the request (``seq: crc k``)."""
        partial = [[p.CRC_INIT] * 2 for _ in s.frames]
        for f, crcs in zip(s.frames, partial):
            for k in range(2, 7):
                crcs.append(p.crc16(f[1:k]))
        asserts = []
        for k in range(2, 7):
            for n, f in enumerate(s.frames):
                here = in_send & (s.sent == k) & (s.which == n)
                asserts += [
                    (
                        ~(here & (s.gap_count == 0))
                        | (
                            rx["fold"]
                            & (rx["byte_reg"] == f[k - 1])
                            & (rx["crc"] == partial[n][k - 1])
                        ),
                        f"seq: crc {k} folding",
                    ),
                    (
                        ~(here & (s.gap_count != 0) & ((s.sent != 6) | (s.gap_count == 1)))
                        | (~rx["fold"] & (rx["crc"] == partial[n][k])),
                        f"seq: crc {k}",
                    ),
                ]
        return asserts
