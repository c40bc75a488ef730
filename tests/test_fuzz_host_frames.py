# amaranth: UnusedElaboratable=no
# (HostLink is built only for the identity it would send.)
"""Fuzzing of the host side of the host link: whatever the board sends back.

The rule under test is the project's: every response byte stream ends in success or in the
project's own one-line error (``SpikeforgeError``: ``FrameError``, ``HostLinkError``), never in
another exception and never in a hang. The board is a scripted port that answers each frame the
driver writes with bytes hypothesis draws for its command: garbage, well-formed frames of any
code and payload, frames of the expected code with a payload of the right size and random
contents (the identity of the right network with some fields changed, timesteps the driver may
expect), error frames, cut-off frames and silence. Default 200 examples per test (the file
about 16 s); ``--slow`` 2,000.
"""

import struct

import numpy as np
import pytest
from amaranth.hdl import Fragment
from host_link_cases import small_network
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.boards.host import HostDriver
from spikeforge.gen.compile import compile_network
from spikeforge.hdl.host_link import HostLink
from spikeforge.spec import protocol as p
from spikeforge.spec.errors import SpikeforgeError, ToolError

PLAN = compile_network(small_network(3), 2)
# What a board of PLAN answers to IDENTIFY: with it the driver gets past check_plan.
_LINK = HostLink(PLAN)
Fragment.get(_LINK, None)  # marks the link and its parts used: only its identity is needed
IDENTITY = _LINK.identity
RESPONSE_SIZES = {
    p.CMD_IDENTIFY: struct.calcsize(p.IDENTITY_FORMAT),
    p.CMD_STATUS: struct.calcsize(p.STATUS_FORMAT),
}


def examples(slow):
    return settings(
        max_examples=2000 if slow else 200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def identity_payload(draw):
    """PLAN's identity with up to three fields (magic kept) random: the driver must not trust
    any of them."""
    size = RESPONSE_SIZES[p.CMD_IDENTIFY]
    fields = list(struct.unpack(p.IDENTITY_FORMAT, IDENTITY))
    noise = struct.unpack(p.IDENTITY_FORMAT, draw(st.binary(min_size=size, max_size=size)))
    for n in draw(st.sets(st.integers(1, len(fields) - 1), max_size=3)):
        fields[n] = noise[n]
    return struct.pack(p.IDENTITY_FORMAT, *fields)


def small_timestep(draw):
    # Small timesteps, so that a step response can carry the one the driver expects.
    return draw(st.integers(0, 3) | st.integers(0, 2**32 - 1))


@st.composite
def responses(draw, command):
    """The bytes the board sends back after a frame of the driver with ``command``."""
    code = draw(
        st.just(p.RESPONSE | command)
        | st.sampled_from([*(p.RESPONSE | c for c in p.COMMANDS), p.RSP_ERROR])
        | st.integers(0, 255)
    )
    kind = draw(st.sampled_from(["sized", "sized", "garbage", "frame", "error", "cut", "silence"]))
    if kind == "garbage":
        return draw(st.binary(max_size=40))
    if kind == "silence":
        return b""
    if kind == "error":
        return p.encode_frame(p.RSP_ERROR, draw(st.binary(min_size=2, max_size=2)))
    if kind == "sized":
        # Sized as the answer to the command that code answers (not necessarily ``command``).
        answered = code & ~p.RESPONSE
        if answered == p.CMD_IDENTIFY:
            return p.encode_frame(code, identity_payload(draw))
        if answered == p.CMD_STATUS:
            flags, _, *counters = struct.unpack(
                p.STATUS_FORMAT,
                draw(
                    st.binary(
                        min_size=RESPONSE_SIZES[p.CMD_STATUS], max_size=RESPONSE_SIZES[p.CMD_STATUS]
                    )
                ),
            )
            return p.encode_frame(
                code, struct.pack(p.STATUS_FORMAT, flags, small_timestep(draw), *counters)
            )
        spikes = draw(st.binary(max_size=12).map(lambda b: b[: len(b) // 3 * 3]))
        head = struct.pack("<II", draw(st.integers(0, 2**32 - 1)), small_timestep(draw))
        return p.encode_frame(code, head + spikes)
    frame = p.encode_frame(code, draw(st.binary(max_size=40)))
    if kind == "cut":
        return frame[: draw(st.integers(0, len(frame) - 1))]
    return frame


class ScriptedPort:
    """A port whose board answers each of the first ``answers`` frames written with bytes drawn
    from ``responses`` of its command (nothing after those); ``read`` returns what is
    buffered, an empty read stands for the port's timeout."""

    def __init__(self, data, answers):
        self.data = data
        self.answers = answers
        self.buffer = bytearray()
        self.writes = 0

    def write(self, frame):
        assert frame[0] == p.SYNC and p.crc16(frame[1:]) == 0
        if self.writes < self.answers:
            self.buffer += self.data.draw(responses(frame[1]))
        self.writes += 1
        return len(frame)

    def read(self, size=1):
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def succeeds_or_says_why(action):
    """Run ``action``; a bad frame (SpikeforgeError) or a failed link (ToolError) must be one
    line. Other exceptions propagate."""
    try:
        action()
    except (SpikeforgeError, ToolError) as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)


ACTIONS = {
    "identify": lambda d: d.identify(),
    "status": lambda d: d.status(),
    "reset": lambda d: d.reset(),
    "step": lambda d: d.step([0, 2]),
    "write_cfg": lambda d: d.write_cfg(0, 0, 0, 1),
    "check_plan": lambda d: d.check_plan(PLAN),
    "load": lambda d: d.load(PLAN),
    "run": lambda d: d.run(np.eye(2, PLAN.n_inputs, dtype=np.uint8), PLAN),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_driver_survives_any_response(request, action):
    @examples(request.config.getoption("--slow"))
    @given(st.data(), st.integers(0, 12))
    def check(data, answers):
        port = ScriptedPort(data, answers)
        succeeds_or_says_why(lambda: ACTIONS[action](HostDriver(port, retries=2)))
        # No hang: once the board falls silent, each command ends after its 3 attempts (a
        # step's retries ask for the status first, run resets and steps); a pipelined load
        # sends at most a receive buffer of CFG frames (11 bytes or more) before it reads, then
        # half as many, down to one.
        assert port.writes <= answers + 30 + 2 * (p.RX_BUFFER // 11)

    check()


def test_decoder_takes_frames_from_any_split(request):
    # Well-formed frames among garbage, cut into arbitrary chunks: every frame whose bytes are
    # not taken by an earlier false start comes out, errors are FrameErrors, nothing else.
    @examples(request.config.getoption("--slow"))
    @given(
        st.lists(
            st.tuples(st.binary(max_size=8), st.integers(0, 255), st.binary(max_size=20)),
            max_size=5,
        ),
        st.lists(st.integers(1, 9), min_size=1, max_size=20),
    )
    def check(pieces, cuts):
        stream = b"".join(junk + p.encode_frame(code, payload) for junk, code, payload in pieces)
        decoder = p.FrameDecoder()
        frames, n, c = [], 0, 0
        while n < len(stream):
            chunk = stream[n : n + cuts[c % len(cuts)]]
            n, c = n + len(chunk), c + 1
            try:
                frames += decoder.feed(chunk)
            except p.FrameError as error:
                assert "\n" not in str(error)
        wanted = [(code, payload) for _, code, payload in pieces]
        # Garbage can start a false frame that swallows a real one; what comes out is still
        # frames that were sent, in order.
        it = iter(wanted)
        assert all(frame in it for frame in frames)
        if not any(p.SYNC in junk for junk, _, _ in pieces):
            assert frames == wanted

    check()


def test_identity_fields_are_checked():
    size = RESPONSE_SIZES[p.CMD_IDENTIFY]
    good = list(struct.unpack(p.IDENTITY_FORMAT, bytes(size)))
    good[:9] = [p.MAGIC, p.VERSION, 2, 1, 8, 4, 10, 6, 12]
    assert p.decode_identity(struct.pack(p.IDENTITY_FORMAT, *good))["cfg_data_width"] == 12
    for index, value, message in [
        (
            1,
            p.VERSION + 1,
            rf"^the board speaks host-link protocol version {p.VERSION + 1}, "
            rf"this spikeforge speaks {p.VERSION}: rebuild the design with this "
            rf"spikeforge$",
        ),
        (2, 0, r"^identify response has lanes 0, expected 1 to 255$"),
        (5, 0, r"^identify response has w_width 0, expected 1 to 255$"),
        (7, 17, r"^identify response has cfg_addr_width 17, expected 1 to 16$"),
        (8, 3, r"^identify response has cfg_data_width 3, expected w_width \(4\) to 255$"),
    ]:
        fields = list(good)
        fields[index] = value
        with pytest.raises(p.FrameError, match=message):
            p.decode_identity(struct.pack(p.IDENTITY_FORMAT, *fields))


def test_cfg_write_arguments_are_checked():
    # Checked against the board's identity, before anything is sent.
    port = ScriptedPort(None, 0)
    port.buffer += p.encode_frame(p.RESPONSE | p.CMD_IDENTIFY, IDENTITY)
    driver = HostDriver(port)
    identity = driver.identify()
    lanes, data_width = identity["lanes"], identity["cfg_data_width"]
    for args, message in [
        (
            (4, 0, 0, 0),
            r"^cfg write memory code must be an integer in \[0, 3\] for the board's "
            r"design, not 4$",
        ),
        (
            (0, lanes, 0, 0),
            rf"^cfg write lane must be an integer in \[0, {lanes - 1}\] for the "
            rf"board's design, not {lanes}$",
        ),
        (
            (0, 0, -1, 0),
            r"^cfg write address must be an integer in \[0, \d+\] for the board's "
            r"design, not -1$",
        ),
        (
            (0, 0, 0, 1 << data_width),
            rf"^cfg write data must be an integer in "
            rf"\[0, {(1 << data_width) - 1}\] for the board's design, "
            rf"not {1 << data_width}$",
        ),
        (
            (0, 0, 0, 1.5),
            r"^cfg write data must be an integer in \[0, \d+\] for the board's "
            r"design, not 1.5$",
        ),
    ]:
        with pytest.raises(SpikeforgeError, match=message):
            driver.write_cfg(*args)
    assert port.writes == 1
