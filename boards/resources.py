"""The resource model of a build: block RAMs of the neuron array and the host link per family.

``spikeforge build`` decides from it where the weights go (block RAM or SPRAM); the capacity
benchmark (:mod:`spikeforge.bench`) searches with it for the largest network a device holds and
confirms the answer with real builds.
"""

import struct
from dataclasses import dataclass

from ..hdl.arith import bits_for, ceil_div
from ..hdl.array_banks import BLOCK_SHAPES, bank_depth
from ..hdl.array_ports import plan_word_layout
from ..hdl.spram import SPRAM_COUNT, SPRAM_DEPTH, spram_tiles
from ..spec.errors import SpikeforgeError
from ..spec.protocol import IDENTITY_FORMAT, RX_BUFFER

__all__ = [
    "RamFamily",
    "RAM_FAMILIES",
    "DEVICE_BLOCKS",
    "WEIGHT_STORES",
    "device_blocks",
    "array_memories",
    "map_memory",
    "memory_model",
    "spram_blocks",
    "block_rams",
    "choose_weights",
]


@dataclass(frozen=True)
class RamFamily:
    """The memory resources that Yosys's ``memory_libmap`` maps an FPGA family's memories to.

    Attributes
    ----------
    cell : str
        Block RAM primitive, as nextpnr's utilisation names it.
    shapes : tuple of (int, int)
        (depth, width) of every simple-dual-port shape of one block.
    block_cost : int
        ``cost`` of one block in Yosys's ``brams.txt`` of the family.
    distributed : bool
        The family has LUT RAM of 16 x 4 bits per cell at cost 4 (``lutrams.txt``).
    """

    cell: str
    shapes: tuple
    block_cost: int
    distributed: bool


# From Yosys's techlibs (ice40/brams.txt, lattice/brams_16kd.txt and lutrams_trellis.txt,
# gowin/brams.txt and lutrams.txt): iCE40 EBR of 4 kbit; ECP5 DP16KD and Gowin BSRAM of 18 kbit
# (512 x 36 only as simple dual port, which every memory of the array is).
RAM_FAMILIES = {
    "ice40": RamFamily("ICESTORM_RAM", BLOCK_SHAPES["ice40"], 64, False),
    "ecp5": RamFamily("DP16KD", BLOCK_SHAPES["ecp5"], 128, True),
    "gowin": RamFamily("BSRAM", BLOCK_SHAPES["gowin"], 128, True),
}

# The memories that the array banks by the family's block depth when they are deeper
# (spikeforge.hdl.array_banks): each bank is a memory of its own to Yosys.
_BANKED = ("weights", "state", "bias")

# Block RAMs per device (data sheets; nextpnr's utilisation reports the same "available").
DEVICE_BLOCKS = {"iCE40UP5K": 30, "LFE5U-85F": 208, "LFE5U-25F": 56, "GW1NR-LV9": 26}

# Yosys's `memory_libmap` default cost of one bit of a RAM lowered to flip-flops and LUTs.
_LOGIC_COST_PER_BIT = 1.0
# The cost of LUT RAM per row of 16 words beyond the first (see map_memory).
_LUTRAM_ROW_COST = 3.5


def device_blocks(device):
    """Block RAMs of ``device`` (a ``Board.device`` such as ``"iCE40UP5K-SG48"``)."""
    for prefix, count in DEVICE_BLOCKS.items():
        if device.startswith(prefix):
            return count
    raise SpikeforgeError(
        f"no block RAM count known for device {device!r}: known are {', '.join(DEVICE_BLOCKS)}"
    )


def array_memories(plan, runtime_weights=False):
    """The memories of :class:`~spikeforge.hdl.array.NeuronArray` for ``plan`` and ``BenchTop``
    (no trace FIFO), as ``(name, depth, width)``, per lane where the array has one per lane;
    with ``runtime_weights`` without the weights (SPRAM, see :func:`spram_blocks`).

    The parameter memory is left out: the array keeps it in logic (``ram_style``). A
    ``SyncFIFOBuffered`` of depth ``d`` stores ``d - 1`` words in memory, the last in a register.
    """
    rows = max(p.rows for p in plan.lif_populations)
    row_width = bits_for(rows - 1)
    pop_width = bits_for(len(plan.populations) - 1)
    index_width = bits_for(plan.max_size - 1)
    state_width = plan.v_width + bits_for(plan.t_ref_max)
    bias_width = plan.v_width
    if plan.per_neuron:
        # The bias words carry the per-neuron parameters too (docs/array.md).
        bias_width = plan_word_layout(plan).size
    memories = []
    for lane in range(plan.lanes):
        if not runtime_weights:
            memories.append((f"weights{lane}", plan.weight_words, plan.w_width))
        memories += [
            (f"acc{lane}", plan.acc_banks * plan.slots, plan.acc_width),
            (f"state{lane}", plan.slots, state_width),
        ]
        if plan.bias_memory:
            memories.append((f"bias{lane}", plan.slots, bias_width))
    memories += [
        ("spike_fifo", rows, row_width + plan.lanes),
        ("out_fifo", 3, pop_width + index_width),
    ]
    return memories


def map_memory(depth, width, family):
    """How Yosys's ``memory_libmap`` maps one ``depth x width`` simple-dual-port memory with a
    synchronous read port: the cheapest of block RAM, LUT RAM (ECP5, Gowin) and logic.

    A block shape ``d x w`` tiles the memory with ``ceil(depth / d)`` rows of
    ``ceil(width / w)`` blocks; like ``memory_libmap`` it costs the blocks plus half a unit per
    bit of the read multiplexer over the rows (``(rows - 1) x width``) and per row of the write
    enable decoder. The shape with the lowest cost is taken, which is not always the one with
    the fewest blocks (96,256 x 8 on ECP5: 48 blocks of 16384x1 beat 47 of 2048x9).

    Returns
    -------
    (kind, blocks) : (str, int)
        ``kind`` is ``"block"``, ``"distributed"`` or ``"logic"``; ``blocks`` the block RAMs it
        takes (0 unless ``"block"``).
    """
    ram = RAM_FAMILIES[family]
    shapes = []
    for d, w in ram.shapes:
        rows = ceil_div(depth, d)
        decode = 0.5 * ((rows - 1) * width + (rows if rows > 1 else 0))
        blocks = rows * ceil_div(width, w)
        shapes.append((blocks * ram.block_cost + decode, blocks))
    block_cost, blocks = min(shapes)
    costs = [(block_cost, "block"), (depth * width * _LOGIC_COST_PER_BIT, "logic")]
    if ram.distributed:
        # Plus a cost per row of 16 words beyond the first, fitted to Yosys 0.70's choices on
        # ECP5 (13 shapes probed; it matters for the small last bank of a banked memory):
        # 192 x 8 takes a block RAM (24 cells, 12 rows: 96 + 38.5 > 128), 176 x 8 (22 cells, 11
        # rows), 96 x 16 (24, 6) and 80 x 18 (25, 5) take LUT RAM.
        rows = ceil_div(depth, 16)
        cost = rows * ceil_div(width, 4) * 4 + _LUTRAM_ROW_COST * (rows - 1)
        costs.append((cost, "distributed"))
    kind = min(costs)[1]
    return kind, blocks if kind == "block" else 0


def _map_banked(name, depth, width, family):
    """``(kind, blocks, banks)`` of one memory of the array: a weight, state or bias memory
    deeper than one block is banked by the family's block depth, each bank mapped by itself
    (the last, holding the words left over, may become LUT RAM)."""
    words = bank_depth(family, width)
    if name.rstrip("0123456789") not in _BANKED or depth <= words:
        return (*map_memory(depth, width, family), 1)
    banks = [
        map_memory(min(words, depth - start), width, family) for start in range(0, depth, words)
    ]
    kind = "block" if any(k == "block" for k, _ in banks) else banks[0][0]
    return kind, sum(blocks for _, blocks in banks), len(banks)


def memory_model(plan, family, runtime_weights=False):
    """Block RAMs of the array for ``plan`` on ``family``: ``(total, memories)`` where each
    memory is a dict of name, depth, width, kind, blocks (see :func:`map_memory`) and banks
    (``spikeforge.hdl.array_banks``); with ``runtime_weights`` the weights are in SPRAM and not
    counted."""
    memories = []
    for name, depth, width in array_memories(plan, runtime_weights):
        kind, blocks, banks = _map_banked(name, depth, width, family)
        memories.append(
            {
                "name": name,
                "depth": depth,
                "width": width,
                "kind": kind,
                "blocks": blocks,
                "banks": banks,
            }
        )
    return sum(m["blocks"] for m in memories), memories


def spram_blocks(plan):
    """SPRAM blocks that hold ``plan``'s weights (:func:`spikeforge.hdl.spram.spram_tiles`)."""
    rows, cols = spram_tiles(plan.weight_words, plan.lanes, plan.w_width)
    return rows * cols


# Where a build keeps the weights: block RAM initialised from the bitstream, or the SPRAM of an
# iCE40 UltraPlus (no initial contents: `spikeforge run` loads them); `auto` takes SPRAM only
# when the array's block RAMs would not fit the device.
WEIGHT_STORES = ("auto", "bram", "spram")


def block_rams(plan, board):
    """Block RAMs that a board build of ``plan`` needs and that ``board`` has: ``(needed,
    available)``.

    The memory model of the array (exact on every board the capacity benchmark built), plus the
    host link's three memories: the STEP indices, the output spikes with the identity and the
    UART's receive buffer (``RX_BUFFER`` bytes: a memory of one word less and a register).
    """
    index_width = bits_for(max(plan.n_inputs - 1, 0))
    spike_width = bits_for(len(plan.populations) - 1) + bits_for(plan.max_size - 1)
    neurons = sum(p.size for p in plan.lif_populations)
    link = [
        (max(plan.n_inputs, 1), index_width),
        (neurons + struct.calcsize(IDENTITY_FORMAT), max(spike_width, 8)),
        (RX_BUFFER - 1, 8),
    ]
    needed = memory_model(plan, board.family)[0] + sum(
        map_memory(depth, width, board.family)[1] for depth, width in link
    )
    return needed, device_blocks(board.device)


def choose_weights(plan, board, weights="auto"):
    """``"bram"`` or ``"spram"``: where a build of ``plan`` for ``board`` keeps the weights.

    ``auto`` takes SPRAM on an iCE40 UltraPlus when the modelled block RAMs of the array and
    the host link exceed the device's, block RAM otherwise.

    Raises
    ------
    SpikeforgeError
        ``weights`` not one of :data:`WEIGHT_STORES`; ``spram`` on a board without SPRAM; or
        weights that need more SPRAM blocks than the device has.
    """
    if weights not in WEIGHT_STORES:
        raise SpikeforgeError(
            f"--weights must be one of {', '.join(WEIGHT_STORES)}, not {weights!r}"
        )
    spram = board.device.startswith("iCE40UP")
    if weights == "auto":
        if not spram:
            return "bram"
        needed, available = block_rams(plan, board)
        weights = "spram" if needed > available else "bram"
    if weights == "bram":
        return "bram"
    if not spram:
        raise SpikeforgeError(
            f"--weights spram needs an iCE40 UltraPlus board (SPRAM), not "
            f"{board.name} ({board.device})"
        )
    rows, cols = spram_tiles(plan.weight_words, plan.lanes, plan.w_width)
    if rows * cols > SPRAM_COUNT:
        raise SpikeforgeError(
            f"network needs {rows * cols} SPRAM blocks for its weights ({plan.weight_words} "
            f"words of {plan.lanes} x {plan.w_width}-bit weights, {SPRAM_DEPTH} words per "
            f"block), the {board.device} has {SPRAM_COUNT}; use "
            f"{'more lanes or ' if plan.lanes == 1 else ''}a smaller network"
        )
    return "spram"
