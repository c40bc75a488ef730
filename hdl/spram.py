"""The weight store of an array with runtime weights: one port, no initial contents.

The iCE40 UltraPlus has four single-port RAMs (``SB_SPRAM256KA``, 16384 x 16 bits each, one
cycle read latency) holding eight times its block RAM. They cannot be initialised from the
bitstream, so an array keeps its weights there only when the host loads them after
configuration (``NeuronArray(plan, runtime_weights=True)``). Yosys infers SPRAM only for a
memory without initial contents, which ``amaranth.lib.memory.Memory`` always has (zeros), so on
an iCE40UP platform :class:`WeightStore` instantiates the SPRAMs itself; elsewhere (the
simulators, other families) it is a ``Memory`` with the same timing and port.

Layout: all lanes walk the same weight address in lock step, so one store word holds the weight
of every lane at that address, lane ``l`` in the nibble-aligned field
``[l * field, l * field + w_width)``, ``field = ceil(w_width / 4) * 4``: the SPRAM's write mask
has one bit per nibble, so a cfg write changes one lane's field only. A word is split over
``ceil(lanes * field / 16)`` SPRAMs side by side, and the address space over
``ceil(depth / 16384)`` rows of them. With 8-bit weights one lane fills half of each SPRAM word
(4 SPRAMs then hold 65,536 weights); two or more lanes fill whole words (131,072 weights).
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.vendor import SiliconBluePlatform

from .arith import bits_for

__all__ = ["WeightStore", "SPRAM_DEPTH", "SPRAM_WIDTH", "SPRAM_COUNT", "spram_tiles", "has_spram"]

SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
# SPRAM blocks of every iCE40 UltraPlus device (UP3K, UP5K).
SPRAM_COUNT = 4


def _field(w_width):
    return -(-w_width // 4) * 4


def spram_tiles(depth, lanes, w_width):
    """``(rows, columns)`` of SPRAM blocks that hold ``depth`` words of ``lanes`` weights."""
    return -(-depth // SPRAM_DEPTH), -(-(lanes * _field(w_width)) // SPRAM_WIDTH)


def has_spram(platform):
    """Whether ``platform`` is an iCE40 UltraPlus (the family with ``SB_SPRAM256KA``)."""
    return isinstance(platform, SiliconBluePlatform) and platform.device.startswith("iCE40UP")


class WeightStore(wiring.Component):
    """``depth`` words of ``lanes`` signed ``w_width``-bit weights behind one port.

    A write (any bit of ``wr_en``) takes ``addr`` for itself; otherwise ``addr`` is read and
    ``rd_data`` holds that word one cycle later. After a write cycle ``rd_data`` is undefined
    (an SPRAM outputs ``x``; the model keeps its last value): the array writes only while its
    walker is idle. There are no initial contents: the ``Memory`` model starts at zero, an SPRAM
    with whatever it holds after power-up.

    Parameters
    ----------
    depth : int
    lanes : int
    w_width : int

    Attributes
    ----------
    addr : In(range(depth))
    wr_en : In(lanes)
        Bit ``l`` writes lane ``l``'s weight of ``wr_data`` at ``addr``.
    wr_data, rd_data : ArrayLayout(signed(w_width), lanes), In and Out
    """

    def __init__(self, depth, lanes, w_width):
        self.depth = depth
        self.lanes = lanes
        self.w_width = w_width
        self.field = _field(w_width)
        super().__init__(
            {
                "addr": In(bits_for(depth - 1)),
                "wr_en": In(lanes),
                "wr_data": In(unsigned(lanes * w_width)),
                "rd_data": Out(unsigned(lanes * w_width)),
            }
        )

    def _packed(self, value):
        # Lane fields at nibble boundaries (the SPRAM write mask's granularity).
        w, pad = self.w_width, self.field - self.w_width
        return Cat(*(Cat(value[l * w : (l + 1) * w], Const(0, pad)) for l in range(self.lanes)))

    def _unpacked(self, word):
        return Cat(
            *(word[l * self.field : l * self.field + self.w_width] for l in range(self.lanes))
        )

    def elaborate(self, platform):
        rows, cols = spram_tiles(self.depth, self.lanes, self.w_width)
        if has_spram(platform) and rows * cols > SPRAM_COUNT:
            raise ValueError(
                f"the weights need {rows * cols} SPRAM blocks, the device has {SPRAM_COUNT}"
            )
        m = Module()
        writing = self.wr_en.any()
        if not has_spram(platform):
            mem = memory.Memory(
                shape=unsigned(self.lanes * self.w_width), depth=self.depth, init=[]
            )
            m.submodules.mem = mem
            wr = mem.write_port(granularity=self.w_width)
            rd = mem.read_port()
            m.d.comb += [
                wr.addr.eq(self.addr),
                wr.data.eq(self.wr_data),
                wr.en.eq(self.wr_en),
                rd.addr.eq(self.addr),
                rd.en.eq(~writing),
                self.rd_data.eq(rd.data),
            ]
            return m

        width = cols * SPRAM_WIDTH
        data_in = Signal(width)
        m.d.comb += data_in.eq(self._packed(self.wr_data))
        # One write-mask bit per nibble, from the enable of the lane owning it.
        nibble_en = Cat(
            *(
                self.wr_en[n * 4 // self.field] if n * 4 < self.lanes * self.field else Const(0)
                for n in range(width // 4)
            )
        )
        low = Signal(bits_for(SPRAM_DEPTH - 1))
        m.d.comb += low.eq(self.addr[: len(low)])
        high = self.addr[len(low) :]
        if rows > 1:
            # The row read is known one cycle later, when its data comes out.
            high_q = Signal.like(high)
            with m.If(~writing):
                m.d.sync += high_q.eq(high)
        outs = []
        for r in range(rows):
            row_write = writing if rows == 1 else writing & (high == r)
            out = Signal(width, name=f"row{r}_out")
            for c in range(cols):
                m.submodules[f"spram_{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=low,
                    i_DATAIN=data_in[c * 16 : (c + 1) * 16],
                    i_MASKWREN=nibble_en[c * 4 : (c + 1) * 4],
                    i_WREN=row_write,
                    i_CHIPSELECT=Const(1),
                    i_CLOCK=ClockSignal(),
                    i_STANDBY=Const(0),
                    i_SLEEP=Const(0),
                    i_POWEROFF=Const(1),
                    o_DATAOUT=out[c * 16 : (c + 1) * 16],
                )
            outs.append(out)
        word = outs[-1]
        for r in reversed(range(rows - 1)):
            word = Mux(high_q == r, outs[r], word)
        m.d.comb += self.rd_data.eq(self._unpacked(word))
        return m
