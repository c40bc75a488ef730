"""An elaborated design's registers, memories and FIFOs, found by name for a harness's invariants.

A design with no formal hooks (the neuron array) is elaborated by its harness, which then reads
the registers its inductive invariants speak of straight from the fragment (:class:`Inside`),
a memory's words through read ports added for the proof (:func:`peek`), and a FIFO's entries
oldest first (:class:`FifoView`). A name that is missing or not unique raises, naming it, so that
a change to the design shows up as a harness that does not elaborate rather than as a proof
about the wrong signal.
"""

from amaranth.hdl import Const, MemoryInstance, Mux, Signal
from amaranth.lib import fifo
from amaranth.utils import ceil_log2

__all__ = ["Inside", "FifoView", "peek"]


class Inside:
    """The registers and submodules of one elaborated fragment, by name.

    Only names that occur once among the signals the fragment's own statements read or write
    are offered.

    Parameters
    ----------
    fragment : amaranth.hdl.Fragment
    what : str
        The fragment in the error messages, e.g. ``"the array"``.
    """

    def __init__(self, fragment, what):
        self.fragment = fragment
        self.what = what
        found = {}
        for stmts in fragment.statements.values():
            for stmt in stmts:
                # Amaranth 0.5 has no public walk over a fragment's signals.
                for sig in [*stmt._lhs_signals(), *stmt._rhs_signals()]:
                    found.setdefault(sig.name, {})[id(sig)] = sig
        self.signals = {
            name: next(iter(sigs.values())) for name, sigs in found.items() if len(sigs) == 1
        }
        self.subs = {name: sub for sub, name, _ in fragment.subfragments}

    def __getitem__(self, name):
        """The signal ``name``; raises ``ValueError`` when there is none or more than one."""
        if name not in self.signals:
            raise ValueError(
                f"{self.what} has no single register named {name!r}; the "
                f"inductive invariants must follow the change"
            )
        return self.signals[name]

    def sub(self, name):
        """The submodule ``name`` (a fragment or a memory); raises ``ValueError`` if missing."""
        if name not in self.subs:
            raise ValueError(
                f"{self.what} has no submodule named {name!r}; the inductive "
                f"invariants must follow the change"
            )
        return self.subs[name]


def peek(m, memory, depth, addr, shape, name):
    """The word at ``addr`` of ``memory`` (a :class:`MemoryInstance` of ``depth`` words).

    It is read combinationally by a port added for the proof, in ``m``; the design's own ports
    are untouched. ``name`` names the data signal (and ``<name>_addr`` the address).
    """
    assert isinstance(memory, MemoryInstance)
    addr_sig = Signal(ceil_log2(depth), name=f"{name}_addr")
    data = Signal(shape, name=name)
    m.d.comb += addr_sig.eq(addr)
    memory.read_port(domain="comb", addr=addr_sig, data=data, en=Const(1), transparent_for=())
    return data


class FifoView:
    """The entries of a ``SyncFIFOBuffered`` inside a design, oldest first, and its pointers.

    Parameters
    ----------
    m : amaranth.hdl.Module
        The harness's module, which gets the read ports of the storage.
    inside : Inside
        The design that holds the FIFO.
    name : str
        The FIFO's submodule name.

    Attributes
    ----------
    fifo : amaranth.lib.fifo.SyncFIFOBuffered
    invariants : list of Value
        What holds of its pointers in every reachable state.
    entries : list of (Value, Value)
        ``(occupied, word)`` of each place: the output register, then the storage from the
        consume pointer on.
    level : Value
    """

    def __init__(self, m, inside, name):
        frag = inside.sub(name)
        objs = [o for o in (frag.origins or ()) if isinstance(o, fifo.SyncFIFOBuffered)]
        if not objs:
            raise ValueError(
                f"{inside.what}'s {name} is not a SyncFIFOBuffered; the inductive "
                f"invariants must follow the change"
            )
        self.fifo = obj = objs[0]
        own = Inside(frag, f"{inside.what}'s {name}")
        depth = obj.depth - 1  # the storage memory; the output register holds one more
        consume, produce, inner = own["consume"], own["produce"], own["inner_level"]
        storage = own.sub("storage")
        self.invariants = [
            inner <= depth,
            consume < depth,
            produce < depth,
            produce == Mux(consume + inner >= depth, consume + inner - depth, consume + inner),
        ]
        self.entries = [(obj.r_rdy, obj.r_data)]
        for n in range(depth):
            addr = Mux(consume + n >= depth, consume + n - depth, consume + n)
            word = peek(m, storage, depth, addr, obj.width, f"{name}_entry{n}")
            self.entries.append((inner > n, word))
        self.level = obj.level
