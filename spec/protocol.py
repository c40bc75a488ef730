"""Frames of the host link (``docs/host-link.md``): encoding, decoding and the CRC.

Shared by the host driver (:mod:`spikeforge.boards.host`), the simulated board and the tests, so
that every side speaks from one definition. The gateware side is
:class:`spikeforge.hdl.host_link.HostLink`, which imports its constants from here.

A frame, in both directions::

    SYNC  CODE  LEN_LO LEN_HI  PAYLOAD[LEN]  CRC_HI CRC_LO

``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR) over ``CODE``, ``LEN`` and ``PAYLOAD``; sent high byte first, so that running the CRC over
the whole frame after ``SYNC`` leaves 0.
"""

import struct

from .errors import SpikeforgeError

__all__ = [
    "SYNC",
    "MAGIC",
    "VERSION",
    "RX_BUFFER",
    "CMD_IDENTIFY",
    "CMD_STATUS",
    "CMD_STEP",
    "CMD_CFG",
    "CMD_RESET",
    "CMD_LAST",
    "CMD_STEPS",
    "STEPS_MAX",
    "STEPS_LIST",
    "STEPS_END",
    "RESPONSE",
    "RSP_ERROR",
    "ERRORS",
    "ERR_CRC",
    "ERR_TIMEOUT",
    "ERR_COMMAND",
    "ERR_LENGTH",
    "ERR_PAYLOAD",
    "ERR_LINE",
    "ERR_SEQUENCE",
    "CRC_INIT",
    "crc16",
    "crc16_byte",
    "encode_frame",
    "FrameDecoder",
    "FrameError",
    "IDENTITY_FORMAT",
    "STATUS_FORMAT",
    "decode_identity",
    "decode_status",
    "decode_step",
    "encode_step",
    "encode_cfg",
    "steps_head_length",
    "encode_steps",
    "decode_steps",
    "decode_steps_response",
    "steps_entries",
]

SYNC = 0x5A
MAGIC = b"SPKF"
VERSION = 4
# Bytes the board buffers from the host (its UART's receive FIFO): the driver sends frames without
# waiting for each answer, as long as the frames not answered yet add up to at most this.
RX_BUFFER = 512

# Commands, host to board.
CMD_IDENTIFY = 0x01  # -> identity of the design
CMD_STATUS = 0x02  # -> counters and state
CMD_STEP = 0x03  # timestep, input indices -> one timestep's output spikes and cycle count
CMD_CFG = 0x04  # one runtime write of the array's cfg port -> acknowledgement
CMD_RESET = 0x05  # network state back to initial -> acknowledgement
CMD_LAST = 0x06  # -> the response of the last STEP again (lost responses)
CMD_STEPS = 0x07  # timestep, many steps' inputs -> one short response frame per step
COMMANDS = (CMD_IDENTIFY, CMD_STATUS, CMD_STEP, CMD_CFG, CMD_RESET, CMD_LAST, CMD_STEPS)
# STEPS: at most this many steps in a frame; flag bit 0: index lists instead of bitmaps; the
# end mark of a step's index list.
STEPS_MAX = 255
STEPS_LIST = 0x01
STEPS_END = 0xFFFF
# A successful response carries the command code with the top bit set.
RESPONSE = 0x80
RSP_ERROR = 0xFF

# Error codes, the payload of an RSP_ERROR frame: (code, command byte of the bad frame or 0).
ERR_CRC, ERR_TIMEOUT, ERR_COMMAND, ERR_LENGTH, ERR_PAYLOAD, ERR_LINE, ERR_SEQUENCE = range(1, 8)
ERRORS = {
    ERR_CRC: "CRC mismatch",
    ERR_TIMEOUT: "frame truncated (byte timeout)",
    ERR_COMMAND: "unknown command",
    ERR_LENGTH: "wrong payload length",
    ERR_PAYLOAD: "bad payload (index, lane or address out of range, or indices not ascending)",
    ERR_LINE: "UART framing error or overrun",
    ERR_SEQUENCE: "step out of sequence (the board is at another timestep)",
}

CRC_INIT = 0xFFFF
_CRC_POLY = 0x1021

# Identity payload: magic, protocol version, lanes, stages, v_width, w_width, acc_width,
# cfg_addr_width, cfg_data_width, populations, n_inputs, slots, weight_words, LIF neurons,
# clock in Hz, network hash (sha256), layout hash (``ArrayPlan.layout_hash``: what a runtime
# load cannot change, the neuron cores' decays among it), entries of the STEPS buffer (0: no
# STEPS).
IDENTITY_FORMAT = "<4sBBBBBBBBBHHIHI32s8sH"
IDENTITY_FIELDS = (
    "magic",
    "version",
    "lanes",
    "stages",
    "v_width",
    "w_width",
    "acc_width",
    "cfg_addr_width",
    "cfg_data_width",
    "populations",
    "n_inputs",
    "slots",
    "weight_words",
    "neurons",
    "clock_hz",
    "network_hash",
    "layout_hash",
    "steps_buffer",
)
# Status payload: flags (bit 0 busy, bit 1 modified: a CFG write since configuration, bit 2
# runtime weights: a design whose weights have no initial contents and whose CFG weight writes
# are bursts), timestep, cycles of the last step, good frames, CRC errors, timeouts, other
# errors.
STATUS_FORMAT = "<BIIIHHH"
STATUS_FIELDS = ("flags", "timestep", "cycles", "frames", "crc_errors", "timeouts", "errors")


class FrameError(SpikeforgeError):
    """A frame from the board that is malformed or an error frame; ``code`` is its error code."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def crc16_byte(crc, byte):
    """One byte of CRC-16/CCITT-FALSE (the bitwise form the gateware implements)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ _CRC_POLY) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc = crc16_byte(crc, byte)
    return crc


def encode_frame(code, payload=b""):
    """The bytes of one frame with command or response ``code``."""
    payload = bytes(payload)
    if not 0 <= code <= 0xFF or len(payload) > 0xFFFF:
        raise SpikeforgeError(
            f"frame code must be a byte and the payload at most 65535 bytes, "
            f"not {code!r} and {len(payload)}"
        )
    body = bytes([code]) + struct.pack("<H", len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack(">H", crc16(body))


class FrameDecoder:
    """Incremental decoder: feed bytes, take whole frames.

    Bytes before a ``SYNC`` are skipped (and counted in ``skipped``). A frame whose CRC does not
    match raises :class:`FrameError` from :meth:`feed`, after which the decoder hunts for the next
    ``SYNC``.
    """

    def __init__(self):
        self.buffer = bytearray()
        self.skipped = 0

    def feed(self, data):
        """Add received bytes; returns the list of complete frames as ``(code, payload)``."""
        self.buffer += data
        frames = []
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer.clear()
                return frames
            self.skipped += start
            del self.buffer[:start]
            if len(self.buffer) < 4:
                return frames
            length = self.buffer[2] | self.buffer[3] << 8
            end = 4 + length + 2
            if len(self.buffer) < end:
                return frames
            frame = bytes(self.buffer[:end])
            del self.buffer[:1]  # on a bad CRC the next SYNC may be inside this frame
            if crc16(frame[1:]) != 0:
                raise FrameError(
                    f"response frame with a bad CRC (code 0x{frame[1]:02x}, {length} bytes)",
                    ERR_CRC,
                )
            del self.buffer[: end - 1]
            frames.append((frame[1], frame[4 : 4 + length]))

    def pending(self):
        """Whether a frame has started but not completed."""
        return SYNC in self.buffer


def _unpack(fmt, fields, payload, what):
    if len(payload) != struct.calcsize(fmt):
        raise FrameError(
            f"{what} response has {len(payload)} bytes, expected {struct.calcsize(fmt)}", ERR_LENGTH
        )
    return dict(zip(fields, struct.unpack(fmt, payload)))


def decode_identity(payload):
    """The identity response as a dict (``network_hash`` as hex)."""
    identity = _unpack(IDENTITY_FORMAT, IDENTITY_FIELDS, payload, "identify")
    if identity["magic"] != MAGIC:
        raise FrameError(
            f"identify response has magic {identity['magic']!r}, not a spikeforge "
            f"design ({MAGIC!r})"
        )
    if identity["version"] != VERSION:
        raise FrameError(
            f"the board speaks host-link protocol version {identity['version']}, "
            f"this spikeforge speaks {VERSION}: rebuild the design with this "
            f"spikeforge"
        )
    # The driver sizes CFG frames and weight bursts from these; a corrupt identity that passed
    # the CRC must not turn into a crash there.
    for field, low, high in [
        ("lanes", 1, 255),
        ("stages", 1, 255),
        ("v_width", 1, 255),
        ("w_width", 1, 255),
        ("acc_width", 1, 255),
        ("cfg_addr_width", 1, 16),
    ]:
        if not low <= identity[field] <= high:
            raise FrameError(
                f"identify response has {field} {identity[field]}, expected {low} to {high}"
            )
    if identity["cfg_data_width"] < identity["w_width"]:
        raise FrameError(
            f"identify response has cfg_data_width {identity['cfg_data_width']}, "
            f"expected w_width ({identity['w_width']}) to 255"
        )
    identity["network_hash"] = identity["network_hash"].hex()
    identity["layout_hash"] = identity["layout_hash"].hex()
    identity["magic"] = identity["magic"].decode()
    return identity


def decode_status(payload):
    """The status response as a dict."""
    status = _unpack(STATUS_FORMAT, STATUS_FIELDS, payload, "status")
    flags = status.pop("flags")
    status["busy"] = bool(flags & 1)
    status["modified"] = bool(flags & 2)
    status["runtime_weights"] = bool(flags & 4)
    # Such a design holds undefined weights until the host writes them.
    status["weights_unloaded"] = status["runtime_weights"] and not status["modified"]
    return status


def encode_step(timestep, indices):
    """STEP payload: the timestep the step runs from (its low 16 bits; the board refuses the
    step at any other), then the input indices of the step, u16 little-endian, ascending."""
    return struct.pack("<H", timestep & 0xFFFF) + b"".join(
        struct.pack("<H", int(i)) for i in indices
    )


def decode_step(payload):
    """STEP response: ``(cycles, timestep, [(population, index), ...])``."""
    if len(payload) < 8 or (len(payload) - 8) % 3:
        raise FrameError(
            f"step response has {len(payload)} bytes, expected 8 + 3 per spike", ERR_LENGTH
        )
    cycles, timestep = struct.unpack_from("<II", payload)
    spikes = [(payload[n], payload[n + 1] | payload[n + 2] << 8) for n in range(8, len(payload), 3)]
    return cycles, timestep, spikes


def encode_cfg(mem, lane, addr, data, data_bytes):
    """CFG payload: memory code, lane, address (u16) and ``data_bytes`` bytes of data (LE)."""
    return struct.pack("<BBH", mem, lane, addr) + int(data).to_bytes(data_bytes, "little")


def steps_head_length(populations):
    """Bytes of a STEPS payload before the inputs: timestep, steps, flags, report mask."""
    return 4 + (populations + 7) // 8


def steps_entries(steps, n_inputs, lists):
    """Buffer entries the inputs of ``steps`` (lists of ascending indices) take on the board:
    ``ceil(n_inputs / 8)`` per step as bitmaps, one per index and end mark as lists."""
    if lists:
        return sum(len(step) + 1 for step in steps)
    return len(steps) * ((n_inputs + 7) // 8)


def encode_steps(timestep, steps, n_inputs, populations, report, lists):
    """STEPS payload: ``steps`` (lists of input indices, ascending) from ``timestep``, with
    population ``p`` reported when ``p`` is in ``report``; as index lists or bitmaps."""
    if not 1 <= len(steps) <= STEPS_MAX:
        raise SpikeforgeError(f"a STEPS frame carries 1 to {STEPS_MAX} steps, not {len(steps)}")
    mask = bytearray((populations + 7) // 8)
    for population in report:
        mask[population // 8] |= 1 << population % 8
    head = struct.pack("<HBB", timestep & 0xFFFF, len(steps), STEPS_LIST if lists else 0)
    body = bytearray()
    for step in steps:
        if lists:
            body += b"".join(struct.pack("<H", int(i)) for i in step)
            body += struct.pack("<H", STEPS_END)
        else:
            bitmap = bytearray((n_inputs + 7) // 8)
            for i in step:
                bitmap[int(i) // 8] |= 1 << int(i) % 8
            body += bitmap
    return head + bytes(mask) + bytes(body)


def decode_steps(payload, n_inputs, populations):
    """A STEPS payload as ``(timestep, steps, report, lists)``, ``steps`` lists of indices
    (the host-side reading of :func:`encode_steps`; no checks beyond the layout)."""
    head = steps_head_length(populations)
    timestep, count, flags = struct.unpack_from("<HBB", payload)
    mask = payload[4:head]
    report = [q for q in range(populations) if mask[q // 8] >> q % 8 & 1]
    data = payload[head:]
    steps = []
    if flags & STEPS_LIST:
        step = []
        for n in range(0, len(data), 2):
            index = data[n] | data[n + 1] << 8
            if index == STEPS_END:
                steps.append(step)
                step = []
            else:
                step.append(index)
    else:
        width = (n_inputs + 7) // 8
        for n in range(0, len(data), width):
            chunk = data[n : n + width]
            steps.append([i for i in range(n_inputs) if chunk[i // 8] >> i % 8 & 1])
    if len(steps) != count:
        raise FrameError(f"steps payload holds {len(steps)} steps, not {count}", ERR_PAYLOAD)
    return timestep, steps, report, bool(flags & STEPS_LIST)


def decode_steps_response(payload):
    """A STEPS step response: ``(timestep_low_byte, cycles, [neuron, ...])``."""
    if len(payload) < 4 or len(payload) % 2:
        raise FrameError(
            f"steps response has {len(payload)} bytes, expected 4 + 2 per spike", ERR_LENGTH
        )
    cycles = payload[1] | payload[2] << 8 | payload[3] << 16
    spikes = [payload[n] | payload[n + 1] << 8 for n in range(4, len(payload), 2)]
    return payload[0], cycles, spikes
