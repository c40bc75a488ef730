"""Banked memories of the neuron array: a memory deeper than one block RAM, split by its high
address bits into banks of one block each, every bank's read data registered before the
multiplexer that selects the bank.

Yosys cascades a deep memory from several block RAMs and puts the multiplexer over their
outputs straight behind the blocks' clock-to-data time; with the 17,024 weight words per lane
of the 256-128-10 network at two lanes that multiplexer set the critical path (under 90 MHz on
the ECP5-85F, ``docs/performance.md``). A
:class:`BankedMemory` registers each bank's output first, so the multiplexer sits between
flip-flops, at the cost of one more cycle of read latency (``docs/array.md``, "Banked
memories").
"""

from types import SimpleNamespace

from amaranth.hdl import Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import memory
from amaranth.vendor import GowinPlatform, LatticePlatform, SiliconBluePlatform

from .arith import bits_for, ceil_div

__all__ = ["BLOCK_SHAPES", "BankedMemory", "bank_depth", "platform_family"]

# (depth, width) of every simple-dual-port shape of one block RAM, from Yosys's techlibs
# (ice40/brams.txt, lattice/brams_16kd.txt, gowin/brams.txt): iCE40 EBR of 4 kbit; ECP5 DP16KD
# and Gowin BSRAM of 18 kbit.
BLOCK_SHAPES = {
    "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
    "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
    "gowin": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
}


def platform_family(platform):
    """The block RAM family of ``platform`` (a key of :data:`BLOCK_SHAPES`), or ``None`` for
    no platform (the simulators, Verilog generation) or one of another family."""
    if isinstance(platform, SiliconBluePlatform):
        return "ice40"
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5":
        return "ecp5"
    if isinstance(platform, GowinPlatform):
        return "gowin"
    return None


def bank_depth(family, width):
    """Words of one bank of a ``width``-bit memory on ``family``: the depth of the block shape
    that holds the most such words per block, the shallowest of equals.

    With 8-bit words that is 2048 (2048x9) on ECP5 and Gowin and 512 (512x8) on iCE40; the
    shallowest of equals keeps the last, partly used bank small.
    """
    return max(BLOCK_SHAPES[family], key=lambda s: (s[0] / ceil_div(width, s[1]), -s[0]))[0]


class BankedMemory(Elaboratable):
    """A memory of ``depth`` words in banks of ``bank_depth`` words, with the ports of the
    array's ``Memory``: one synchronous read port and one write port.

    Bank ``b`` holds words ``[b * bank_depth, (b + 1) * bank_depth)``. A read takes two cycles:
    every bank reads the low address bits into its read register, then a register of each
    bank's data; ``read.data`` is the multiplexer over those registers by the twice registered
    bank number, so it holds the word at ``read.addr`` of two clock edges before (not
    transparent: a write at the first edge is not seen). A write stores ``write.data`` at
    ``write.addr`` while ``write.en`` is high, into the bank that the high bits select.

    With ``one_port`` the banks read and write through one address, the write's while
    ``write.en`` is high: a read in a write cycle returns the old word at the write address,
    not at ``read.addr``. For a memory that is never read while it is written (the weights,
    written by ``cfg`` while the walker is idle), so that the block RAM reads before it writes
    by itself. With a read port and a write port at different addresses Yosys has to keep a
    read of a word written in the same cycle old, which it does with a register of the write
    and a multiplexer behind the block's output: a LUT and a long route into the bank register
    on the ECP5.

    Parameters
    ----------
    shape : ShapeLike
        Word shape.
    depth : int
        Words, more than ``bank_depth``.
    bank_depth : int
        Words per bank, a power of two.
    init : list of int
        Initial contents, ``depth`` words at most (zeros after).
    one_port : bool
        Read and write through one address (see above).

    Attributes
    ----------
    banks : list of Memory
    read : namespace of ``addr``, ``data``
    write : namespace of ``addr``, ``data``, ``en``
    latency : int
        Read latency in cycles, 2.
    """

    latency = 2

    def __init__(self, shape, depth, bank_depth, init, one_port=False):
        if bank_depth & (bank_depth - 1) or not 2 <= bank_depth < depth:
            raise ValueError(
                f"bank_depth must be a power of two from 2 to {depth - 1}, not {bank_depth}"
            )
        self.shape = shape
        self.one_port = one_port
        self.bank_depth = bank_depth
        count = ceil_div(depth, bank_depth)
        init = list(init)
        self.banks = [
            memory.Memory(
                shape=shape,
                # The last bank holds only the words left over.
                depth=max(min(bank_depth, depth - b * bank_depth), 2),
                init=init[b * bank_depth : (b + 1) * bank_depth],
            )
            for b in range(count)
        ]
        addr_width = bits_for(depth - 1)
        self.read = SimpleNamespace(addr=Signal(addr_width), data=Signal(shape))
        self.write = SimpleNamespace(addr=Signal(addr_width), data=Signal(shape), en=Signal())

    def read_port(self):
        """The read port (there is one), as ``Memory.read_port`` returns one."""
        return self.read

    def write_port(self):
        """The write port (there is one), as ``Memory.write_port`` returns one."""
        return self.write

    def elaborate(self, platform):
        m = Module()
        low = bits_for(self.bank_depth - 1)
        sel1 = Signal(range(len(self.banks)))
        sel2 = Signal.like(sel1)
        m.d.sync += [sel1.eq(self.read.addr[low:]), sel2.eq(sel1)]
        read_addr, write_addr = self.read.addr, self.write.addr
        if self.one_port:
            shared = Signal.like(self.read.addr, name="addr")
            m.d.comb += shared.eq(Mux(self.write.en, self.write.addr, self.read.addr))
            read_addr = write_addr = shared
        registered = []
        for b, bank in enumerate(self.banks):
            m.submodules[f"bank{b}"] = bank
            rd = bank.read_port()
            wr = bank.write_port()
            bank_addr = bits_for(bank.depth - 1)
            # Without a reset, so that nothing stands between the block's output and the
            # register (the block RAM's own output register where the tools use it).
            registered.append(Signal(self.shape, name=f"bank{b}_q", reset_less=True))
            m.d.comb += [
                rd.addr.eq(read_addr[:bank_addr]),
                wr.addr.eq(write_addr[:bank_addr]),
                wr.data.eq(self.write.data),
                wr.en.eq(self.write.en & (self.write.addr[low:] == b)),
            ]
            m.d.sync += registered[b].eq(rd.data)
        m.d.comb += self.read.data.eq(_mux_tree([Value.cast(r) for r in registered], sel2))
        return m


def _mux_tree(values, sel):
    """``values[sel]`` as a balanced tree of two-way multiplexers, one level per bit of ``sel``
    (a chain of compares would put one multiplexer per bank in the path)."""
    for bit in range(len(sel)):
        values = [
            Mux(sel[bit], values[n + 1], values[n]) if n + 1 < len(values) else values[n]
            for n in range(0, len(values), 2)
        ]
    return values[0]
