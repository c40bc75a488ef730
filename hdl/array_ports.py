"""The stream payloads of the neuron array's ports, the codes of its ``cfg`` memories and the
row of its state memories.

``stream.Signature`` is final, so the named types are the payload layouts: a port is
``stream.Signature(SpikeInLayout(...))``. Each layout compares equal to any ``StructLayout`` with
the same fields, so a stream built elsewhere with the same fields still connects.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from ..spec.limits import LANES, MAX_DECAY_TERMS
from .arith import bits_for
from .neuron import decay_term_layout, pack_terms

__all__ = [
    "CfgMemory",
    "SpikeInLayout",
    "SpikeOutLayout",
    "TraceLayout",
    "CfgLayout",
    "state_layout",
    "neuron_word_layout",
    "plan_word_layout",
    "neuron_words",
    "LANE_WIDTH",
]

# Bits of ``CfgLayout.lane``: enough to name every lane of the largest array, so that the port's
# shape does not depend on the lane count.
LANE_WIDTH = (max(LANES) - 1).bit_length()


class CfgMemory(enum.IntEnum, shape=unsigned(2)):
    """The memory that a write of the ``cfg`` port goes to (``docs/array.md``).

    An integer enumeration: the host link carries the same codes in its CFG frames
    (``docs/host-link.md``).
    """

    WEIGHTS = 0
    BIAS = 1
    STATE = 2
    PARAMS = 3


class SpikeInLayout(data.StructLayout):
    """Payload of ``spike_in``: an input event of the current step, or the step's end.

    Members
    -------
    index : unsigned(index_width)
        Index of the spiking neuron in the network's input vector.
    end : unsigned(1)
        Closes the step's input; ``index`` is then ignored.
    """

    def __init__(self, index_width):
        self._index_width = index_width
        super().__init__({"index": unsigned(index_width), "end": unsigned(1)})

    @property
    def index_width(self):
        return self._index_width

    def __repr__(self):
        return f"SpikeInLayout(index_width={self._index_width})"


class SpikeOutLayout(data.StructLayout):
    """Payload of ``spike_out``: a spike of a LIF population.

    Members
    -------
    population : unsigned(pop_width)
        Index of the population in the network's population list.
    index : unsigned(index_width)
        Index of the neuron in its population.
    """

    def __init__(self, pop_width, index_width):
        self._pop_width = pop_width
        self._index_width = index_width
        super().__init__({"population": unsigned(pop_width), "index": unsigned(index_width)})

    @property
    def pop_width(self):
        return self._pop_width

    @property
    def index_width(self):
        return self._index_width

    def __repr__(self):
        return f"SpikeOutLayout(pop_width={self._pop_width}, index_width={self._index_width})"


class TraceLayout(data.StructLayout):
    """Payload of ``trace_out``: the membranes of one update cycle of all lanes.

    Members
    -------
    population : unsigned(pop_width)
        Index of the updated population in the network's population list.
    slot : unsigned(row_width)
        Row of the population: ``v[l]`` belongs to neuron ``slot * lanes + l``.
    mask : unsigned(lanes)
        Bit ``l`` set where lane ``l`` holds a neuron of the population.
    v : ArrayLayout(signed(v_width), lanes)
        The membrane trace of each lane's neuron.
    """

    def __init__(self, pop_width, row_width, lanes, v_width):
        self._pop_width = pop_width
        self._row_width = row_width
        self._lanes = lanes
        self._v_width = v_width
        super().__init__(
            {
                "population": unsigned(pop_width),
                "slot": unsigned(row_width),
                "mask": unsigned(lanes),
                "v": data.ArrayLayout(signed(v_width), lanes),
            }
        )

    @property
    def pop_width(self):
        return self._pop_width

    @property
    def row_width(self):
        return self._row_width

    @property
    def lanes(self):
        return self._lanes

    @property
    def v_width(self):
        return self._v_width

    def __repr__(self):
        return (
            f"TraceLayout(pop_width={self._pop_width}, row_width={self._row_width}, "
            f"lanes={self._lanes}, v_width={self._v_width})"
        )


class CfgLayout(data.StructLayout):
    """Payload of ``cfg``: one runtime write.

    Members
    -------
    mem : unsigned(2)
        A :class:`CfgMemory` code. Not of that enum's shape, which would add enum attributes
        to the field's wires and so change the generated Verilog.
    lane : unsigned(LANE_WIDTH)
        The lane whose memory is written (:data:`LANE_WIDTH` bits, every lane of the largest
        array).
    addr : unsigned(addr_width)
        Word address in the memory.
    data : unsigned(data_width)
        The word, in the memory's layout (``spikeforge.hdl.plan``).
    """

    def __init__(self, addr_width, data_width):
        self._addr_width = addr_width
        self._data_width = data_width
        super().__init__(
            {
                "mem": unsigned(2),
                "lane": unsigned(LANE_WIDTH),
                "addr": unsigned(addr_width),
                "data": unsigned(data_width),
            }
        )

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __repr__(self):
        return f"CfgLayout(addr_width={self._addr_width}, data_width={self._data_width})"


def state_layout(v_width, t_ref_width, synaptic=False, delayed_reset=False):
    """Row of a lane's state memory: membrane, refractory counter, in an array with a
    current-based population the synaptic current ``i`` and, in an array with a population of
    ``reset_timing = "next"``, the pending reset ``s`` (the neuron spiked in its last step)."""
    fields = {"v": signed(v_width), "r": unsigned(t_ref_width)}
    if synaptic:
        fields["i"] = signed(v_width)
    if delayed_reset:
        fields["s"] = unsigned(1)
    return data.StructLayout(fields)


def neuron_word_layout(v_width, decay_sets, syn_decay_sets=None, *, synaptic=None):
    """Word of a lane's bias memory in an array with per-neuron parameters
    (``ArrayPlan.per_neuron``): the neuron's bias, ``v_th``, ``v_reset``, ``v_rest`` and its
    decay, as an index ``decay_sel`` into ``decay_sets`` or, with ``decay_sets`` ``None``
    (``ArrayPlan.runtime_decay``), as the runtime shift terms ``decay``. With ``synaptic``
    (by default, whether ``syn_decay_sets`` is given) its synaptic decay likewise:
    ``syn_decay_sel`` into ``syn_decay_sets``, or terms ``syn_decay`` without them.
    """
    if synaptic is None:
        synaptic = syn_decay_sets is not None
    terms = data.ArrayLayout(decay_term_layout(v_width), MAX_DECAY_TERMS)
    fields = {
        "bias": signed(v_width),
        "v_th": signed(v_width),
        "v_reset": signed(v_width),
        "v_rest": signed(v_width),
    }
    if decay_sets is None:
        fields["decay"] = terms
    else:
        fields["decay_sel"] = unsigned(bits_for(len(decay_sets) - 1))
    if synaptic:
        if syn_decay_sets is None:
            fields["syn_decay"] = terms
        else:
            fields["syn_decay_sel"] = unsigned(bits_for(len(syn_decay_sets) - 1))
    return data.StructLayout(fields)


def plan_word_layout(plan):
    """:func:`neuron_word_layout` of a plan with per-neuron parameters."""
    return neuron_word_layout(
        plan.v_width, plan.core_decay_sets, plan.core_syn_decay_sets, synaptic=plan.synaptic
    )


def neuron_words(plan, lane):
    """The bias memory words of ``lane`` of a plan with per-neuron parameters: one ``dict``
    of :func:`plan_word_layout` per slot."""
    decay_sets = plan.core_decay_sets
    syn_sets = plan.core_syn_decay_sets
    n = plan.neuron
    words = []
    for slot in range(plan.slots):
        word = {
            "bias": int(plan.bias[lane, slot]),
            "v_th": int(n["v_th"][lane, slot]),
            "v_reset": int(n["v_reset"][lane, slot]),
            "v_rest": int(n["v_rest"][lane, slot]),
        }
        decay = n["decay"][lane, slot]
        if decay_sets is None:
            word["decay"] = pack_terms(decay)
        else:
            word["decay_sel"] = decay_sets.index(decay)
        if plan.synaptic:
            # A plain population's synaptic decay is never used: selection 0, or no terms.
            syn = n["syn_decay"][lane, slot]
            if syn_sets is None:
                word["syn_decay"] = pack_terms(syn or ())
            else:
                word["syn_decay_sel"] = 0 if syn is None else syn_sets.index(syn)
        words.append(word)
    return words
