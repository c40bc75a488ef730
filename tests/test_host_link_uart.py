"""The host link through the real UARTRx/UARTTx: serial lines at a small divisor in Amaranth's
simulator, the driver on the other end. Runtime about 10 s of CPU (15 s on two shared cores)."""

import numpy as np
from amaranth.sim import Simulator
from host_link_cases import FaultyPort, relayout_variant, small_network
from network_cases import random_spikes

from spikeforge.boards.host import HostDriver, SimulatedBoard
from spikeforge.gen.compile import compile_network
from spikeforge.hdl.host_link import HostLinkUART
from spikeforge.sim.network_golden import run_network
from spikeforge.spec import protocol as p

DIVISOR = 4


def test_run_through_uart_matches_golden():
    net = small_network(11, max_size=6)
    plan = compile_network(net, 2)
    spikes = random_spikes(np.random.default_rng(11), net, 4, activity=0.5)
    port = FaultyPort(SimulatedBoard(plan, divisor=DIVISOR), write_faults={4: "flip"})
    driver = HostDriver(port)
    run = driver.run(spikes, plan)
    golden = run_network(net, spikes)
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)
    assert sum(int(s.sum()) for s in golden.spikes.values()) > 0
    status = driver.status()
    assert status["timestep"] == 4 and status["crc_errors"] + status["errors"] == 1
    assert driver.recovered == 1


def test_framing_error_is_answered_and_recovered():
    plan = compile_network(small_network(12, max_size=4), 1)
    dut = HostLinkUART(plan, DIVISOR, timeout=40 * DIVISOR)
    received = bytearray()

    async def host(ctx):
        async def send(byte, stop=1):
            for level in [0, *((byte >> i) & 1 for i in range(8)), stop]:
                ctx.set(dut.rx, level)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(DIVISOR)

        frame = p.encode_frame(p.CMD_STATUS)
        # A frame whose third byte has a low stop bit, then (after the answer) a good one.
        for n, byte in enumerate(frame):
            await send(byte, stop=int(n != 2))
        await ctx.tick().repeat(200 * DIVISOR)
        for byte in frame:
            await send(byte)
        await ctx.tick().repeat(400 * DIVISOR)

    async def line(ctx):
        while True:
            if (await ctx.tick().sample(dut.tx))[2]:
                continue  # not tick().until(): a background testbench that never ends
            await ctx.tick().repeat(DIVISOR // 2)
            byte = 0
            for bit in range(8):
                await ctx.tick().repeat(DIVISOR)
                byte |= ctx.get(dut.tx) << bit
            await ctx.tick().repeat(DIVISOR)
            received.append(byte)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(line, background=True)
    sim.run()
    frames = p.FrameDecoder().feed(bytes(received))
    assert frames[0] == (p.RSP_ERROR, bytes([p.ERR_LINE, p.CMD_STATUS]))
    code, payload = frames[1]
    assert code == p.RESPONSE | p.CMD_STATUS
    status = p.decode_status(payload)
    assert status["errors"] == 1 and status["frames"] == 1 and len(frames) == 2


def test_pipelined_frames_wait_in_the_receive_buffer():
    # A load sends its CFG frames back to back on the line without waiting for the answers:
    # the bytes that come while the link answers wait in the receive buffer, and none is lost
    # (no UART overrun, error 6). (That the writes are the right ones: test_host_link.py.)
    net = small_network(13, n_lif=1, max_size=3)
    port = FaultyPort(SimulatedBoard(compile_network(net, 1), divisor=DIVISOR))
    driver = HostDriver(port)
    # All 10 frames went out before the first answer was read (no BIAS frames: the network's
    # biases are one value, which the PARAMS row carries).
    assert driver.load(compile_network(relayout_variant(net, 13), 1)) == port.longest_burst == 10
    status = driver.status()
    assert status["frames"] == driver.attempts and driver.recovered == 0
    assert status["crc_errors"] == status["timeouts"] == status["errors"] == 0
