# amaranth: UnusedElaboratable=no
# (The argument checks raise before a unit is elaborated.)
"""The host link's units on their own: the receiver's frames and the transmitter's bytes, in
Amaranth's simulator, and their parameter checks. The whole link is in test_host_link.py."""

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from host_link_cases import small_network

from spikeforge.gen.compile import compile_network
from spikeforge.hdl.array import NeuronArray
from spikeforge.hdl.host_link_exec import CommandExecutor
from spikeforge.hdl.host_link_rx import FrameReceiver
from spikeforge.hdl.host_link_tx import FrameTransmitter
from spikeforge.spec import protocol as p


async def stream_put(ctx, port, payload):
    """Offer ``payload`` on ``port`` until it is taken."""
    ctx.set(port.valid, 1)
    ctx.set(port.payload, payload)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def _receive(data, n_frames, n_inputs=4, data_bytes=2):
    """The first ``n_frames`` frames a FrameReceiver offers for the bytes ``data``: (code,
    error, count, indices, seq) each, the executor's part played by a testbench that reads the index
    buffer and takes the frame a few cycles later."""
    dut = FrameReceiver(n_inputs, data_bytes, timeout=16)
    frames = []

    async def host(ctx):
        for byte in data:
            await stream_put(ctx, dut.rx, byte)

    async def executor(ctx):
        for _ in range(n_frames):
            await ctx.tick().until(dut.frame.valid)
            frame = dut.frame.payload
            count = ctx.get(frame.count)
            indices = []
            for n in range(count):
                ctx.set(dut.indices.addr, n)
                await ctx.tick()
                indices.append(ctx.get(dut.indices.data))
            frames.append(
                (ctx.get(frame.code), ctx.get(frame.error), count, indices, ctx.get(frame.seq))
            )
            ctx.set(dut.frame.ready, 1)
            await ctx.tick()
            ctx.set(dut.frame.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host, background=True)
    sim.add_testbench(executor)
    sim.run()
    return frames


@pytest.mark.parametrize(
    "data,expected",
    [
        (p.encode_frame(p.CMD_STATUS), [(p.CMD_STATUS, 0, 0, [], 0)]),
        (
            b"\x00" + p.encode_frame(p.CMD_STEP, p.encode_step(0x12345, [1, 3])),
            [(p.CMD_STEP, 0, 2, [1, 3], 0x2345)],
        ),
        # The timestep alone: a step without input spikes.
        (p.encode_frame(p.CMD_STEP, p.encode_step(7, [])), [(p.CMD_STEP, 0, 0, [], 7)]),
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(9, [3, 1])),
            [(p.CMD_STEP, p.ERR_PAYLOAD, 2, [3, 1], 9)],
        ),
        (p.encode_frame(p.CMD_STEP), [(p.CMD_STEP, p.ERR_LENGTH, 0, [], 0)]),
        (p.encode_frame(0x42), [(0x42, p.ERR_COMMAND, 0, [], 0)]),
        (p.encode_frame(p.CMD_CFG, bytes(4)), [(p.CMD_CFG, p.ERR_LENGTH, 0, [], 0)]),
        (p.encode_frame(p.CMD_STATUS)[:-1] + b"\x00", [(p.CMD_STATUS, p.ERR_CRC, 0, [], 0)]),
        (p.encode_frame(p.CMD_STATUS)[:3], [(p.CMD_STATUS, p.ERR_TIMEOUT, 0, [], 0)]),
    ],
)
def test_receiver_offers_checked_frames(data, expected):
    assert _receive(data, len(expected)) == expected


def test_transmitter_sends_frames():
    dut = FrameTransmitter()
    responses = [(p.RESPONSE | p.CMD_STATUS, bytes(range(19))), (p.RSP_ERROR, b"\x04\x02")]
    responses.append((p.RESPONSE | p.CMD_RESET, b""))
    received = bytearray()
    done = []

    async def executor(ctx):
        for code, payload in responses:
            await stream_put(ctx, dut.header, {"code": code, "length": len(payload)})
            for byte in payload:
                await stream_put(ctx, dut.payload, byte)
            await ctx.tick().until(dut.done)
            done.append(len(received))

    async def host(ctx):
        # Ready two cycles in three: the transmitter holds each byte until it is taken.
        cycle = 0
        while True:
            ctx.set(dut.tx.ready, cycle % 3 != 2)
            _, _, valid, ready, byte = await ctx.tick().sample(
                dut.tx.valid, dut.tx.ready, dut.tx.payload
            )
            if valid and ready:
                received.append(byte)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(executor)
    sim.add_testbench(host, background=True)
    sim.run()
    frames = [p.encode_frame(code, payload) for code, payload in responses]
    assert bytes(received) == b"".join(frames)
    assert done == [sum(map(len, frames[: n + 1])) for n in range(len(frames))]


def test_unit_parameter_errors():
    with pytest.raises(TypeError, match=r"^n_inputs must be an integer in \[0, 32766\], not -1$"):
        FrameReceiver(-1, 2)
    with pytest.raises(TypeError, match=r"^data_bytes must be an integer in \[1, 32\], not 33$"):
        FrameReceiver(4, 33)
    with pytest.raises(TypeError, match=r"^timeout must be an integer in \[16, 4294967295\], "):
        FrameReceiver(4, 2, timeout=15)
    plan = compile_network(small_network(0), 1)
    array = NeuronArray(plan)
    # Only its signature and widths are used; elaborated so that Amaranth does not warn that
    # its memories were never used.
    Fragment.get(array, None)
    with pytest.raises(TypeError, match=r"^identity must be 1 to 255 bytes, not 'SPKF'$"):
        CommandExecutor(plan, array, identity="SPKF")
    with pytest.raises(TypeError, match=r"^runtime_weights must be True or False, not 1$"):
        CommandExecutor(plan, array, identity=b"SPKF", runtime_weights=1)
