"""UARTRx/UARTTx in Amaranth's simulator: loopback, line-level frames, errors, back-pressure."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator
from streams import stream_get, stream_put

from spikeforge.hdl.uart import UARTRx, UARTTx, uart_divisor


def _loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    return m, tx, rx


def _run(design, *testbenches, deadline=None):
    sim = Simulator(design)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench, background=testbench is not testbenches[0])
    sim.run_until(deadline) if deadline else sim.run()


def _watch(signal, values):
    """A testbench that appends the value of ``signal`` at every clock edge to ``values``."""

    async def watch(ctx):
        # Not `async for`: it would raise when the simulation ends (see streams.py).
        while True:
            _, _, value = await ctx.tick().sample(signal)
            values.append(value)

    return watch


async def _send_frame(ctx, line, divisor, byte, stop=1):
    # Drive one 8N1 frame on `line` bit by bit, as a host's serial port would.
    for level in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(line, level)
        await ctx.tick().repeat(divisor)
    ctx.set(line, 1)


@pytest.mark.parametrize("divisor", [4, 5, 13])
def test_loopback_random_bytes(divisor):
    m, tx, rx = _loopback(divisor)
    rng = random.Random(divisor)
    sent = [rng.randrange(256) for _ in range(60)] + [0x00, 0xFF, 0x55, 0xAA]
    got = []
    flags = []

    async def producer(ctx):
        for byte in sent:
            await stream_put(ctx, tx.data, byte)

    async def consumer(ctx):
        while len(got) < len(sent):
            got.append(await stream_get(ctx, rx.data))

    _run(m, consumer, producer, _watch(rx.error | rx.overflow, flags))
    assert got == sent
    assert not any(flags)


def test_tx_line_waveform_and_backpressure():
    divisor = 7
    dut = UARTTx(divisor)
    sent = [0xA5, 0x3C, 0x01]
    levels = []
    ready_while_busy = []

    async def producer(ctx):
        # Offer every byte at once; the transmitter must hold each off until the line is free.
        for byte in sent:
            await stream_put(ctx, dut.data, byte)

    async def line(ctx):
        for _ in range(len(sent) * 10 * divisor + 20):
            _, _, tx, ready = await ctx.tick().sample(dut.tx, dut.data.ready)
            levels.append(tx)
            ready_while_busy.append(ready)

    _run(dut, line, producer)
    # Decode from the waveform: each frame starts at a falling edge; sample mid-bit.
    decoded = []
    i = 0
    while i < len(levels) and len(decoded) < len(sent):
        if levels[i] == 0:
            bits = [levels[i + divisor // 2 + k * divisor] for k in range(10)]
            assert bits[0] == 0 and bits[9] == 1
            decoded.append(sum(b << k for k, b in enumerate(bits[1:9])))
            i += 10 * divisor
        else:
            i += 1
    assert decoded == sent
    # Frames follow back to back: ready is high only one cycle per frame while bytes wait.
    assert sum(ready_while_busy[: len(sent) * 10 * divisor - 1]) <= len(sent)


def test_rx_framing_error_on_low_stop_bit():
    divisor = 8
    dut = UARTRx(divisor)
    events = []

    async def host(ctx):
        await ctx.tick().repeat(5)
        await _send_frame(ctx, dut.rx, divisor, 0x42, stop=0)
        # A break: the line stays low for a while, then a good frame follows.
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(3 * divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        await _send_frame(ctx, dut.rx, divisor, 0x99)
        await ctx.tick().repeat(3 * divisor)

    async def reader(ctx):
        while True:
            events.append(("byte", await stream_get(ctx, dut.data)))

    async def errors(ctx):
        while True:
            _, _, error = await ctx.tick().sample(dut.error)
            if error:
                events.append(("error",))

    _run(dut, host, reader, errors)
    assert events == [("error",), ("byte", 0x99)]


def test_rx_overflow_when_consumer_stalls():
    divisor = 6
    dut = UARTRx(divisor)
    overflows = []
    got = []

    async def host(ctx):
        for byte in (0x11, 0x22, 0x33):
            await _send_frame(ctx, dut.rx, divisor, byte)
        await ctx.tick().repeat(4 * divisor)

    async def consumer(ctx):
        # Not ready for the first three frames: the first byte is kept, the next two dropped.
        await ctx.tick().repeat(32 * divisor)
        while True:
            got.append(await stream_get(ctx, dut.data))

    _run(dut, host, consumer, _watch(dut.overflow, overflows))
    assert sum(overflows) == 2
    assert got == [0x11]


def test_rx_ignores_start_glitch():
    divisor = 10
    dut = UARTRx(divisor)
    got = []
    errors = []

    async def host(ctx):
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(2)  # shorter than half a bit
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(12 * divisor)

    async def reader(ctx):
        while True:
            got.append(await stream_get(ctx, dut.data))

    _run(dut, host, reader, _watch(dut.error, errors))
    assert not got and not any(errors)


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
@pytest.mark.parametrize("divisor", [3, 0, 1 << 25, 10.0, True])
def test_divisor_validated(cls, divisor):
    with pytest.raises(TypeError, match=r"^divisor must be an integer in \[4, 16777216\], not "):
        cls(divisor)


def test_uart_divisor():
    assert uart_divisor(12e6, 115200) == 104
    assert uart_divisor(27e6, 115200) == 234
    with pytest.raises(ValueError, match=r"^baud 2\.5e\+06 from a 12 MHz clock is 4\.0% off"):
        uart_divisor(12e6, 2_500_000)
    with pytest.raises(ValueError, match=r"needs 2 cycles per bit, outside \[4, 16777216\]"):
        uart_divisor(12e6, 6e6)
    with pytest.raises(ValueError, match=r"^clock_hz and baud must be positive"):
        uart_divisor(12e6, 0)
