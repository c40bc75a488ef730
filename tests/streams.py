"""Drive and read ``amaranth.lib.stream`` interfaces from async testbenches.

One transfer per call, in the style of Amaranth's stream documentation: :func:`stream_put` holds
``valid`` until the clock edge at which ``ready`` is high, :func:`stream_get` holds ``ready``
until the edge at which ``valid`` is high. Each lowers its strobe after the transfer, but a loop
of calls raises it again before the next edge, so back-to-back calls transfer one payload per
cycle, as a hand-written loop that keeps the strobe high would.

The waits are plain ``ctx.tick().sample(...)`` loops, not ``until``: a background testbench
left inside ``until``, ``repeat`` or ``async for`` when the simulation ends raises "aclose():
asynchronous generator is already running" when it is collected, on Python 3.12 and older
(amaranth-lang/amaranth#1638), and a consumer waiting for the next payload is left just there.
"""

__all__ = ["stream_put", "stream_get"]


async def stream_put(ctx, stream, payload):
    """Offer ``payload`` on ``stream`` and return after the clock edge that transfers it.

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
    stream : amaranth.lib.stream.Interface
        The sink side of the design (``In(stream.Signature(...))``).
    payload
        Any value ``ctx.set`` accepts for the payload: an int, or a dict for a layout.
    """
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    ready = False
    while not ready:
        _, _, ready = await ctx.tick().sample(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one payload from ``stream`` and return it after the clock edge that transfers it.

    Parameters
    ----------
    ctx : amaranth.sim.SimulatorContext
    stream : amaranth.lib.stream.Interface
        The source side of the design (``Out(stream.Signature(...))``).

    Returns
    -------
    The payload as ``ctx.get`` reads it: an int, or a view for a layout.
    """
    ctx.set(stream.ready, 1)
    valid = False
    while not valid:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
    ctx.set(stream.ready, 0)
    return payload
