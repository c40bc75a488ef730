"""The memory layout of a network on the neuron array: plain numbers and arrays, no I/O.

``spikeforge.gen.compile`` builds an :class:`ArrayPlan` from a network description; the array
(:mod:`spikeforge.hdl.array`) is elaborated from it. Keeping the layout arithmetic here, apart from
both, lets the tests and the host driver address the same memories the hardware has.

Layout, for ``P`` lanes:

- LIF neuron ``i`` of population ``k`` lives in lane ``i % P`` at slot ``base_k + i // P``; every
  population owns ``rows_k = ceil(size_k / P)`` slots in every lane, so a slot address means the
  same population in all lanes. A population with ``channels`` (fed by a convolution whose lanes
  run over output channels) holds neuron ``(o, y, x)`` at ``i = (y W + x) channels + o`` instead.
- The weights of projection ``p`` (source ``a`` to target ``b``) from source neuron ``j`` are the
  ``rows_b`` words at ``weight_base_p + j * rows_b`` of each lane; word ``c`` of lane ``l`` holds
  ``W[j, c * P + l]`` (0 past the end of ``b``).
- A convolution (``ProjectionPlan.conv``, a :class:`ConvWalk`) stores its kernel once, the same
  words in every lane: word ``weight_base + ((c kh + ky) kw + kx) O_g + o_i`` holds
  ``W[g O_g + o_i, c - g C_g, ky, kx]``; an event walks its valid taps (``docs/array.md``).
- The accumulators have :attr:`ArrayPlan.acc_banks` banks of ``slots`` words. With a recurrent
  projection (from the same or a later population) there are two: the bank of timestep ``t`` is
  ``t % 2`` and a recurrent projection adds into the other bank. Without one, every delivery
  of a step is consumed by an update of the same step, so one bank (bank 0) serves every step.
- A bias memory (``ArrayPlan.bias_memory``) holds the bias of slot ``s`` of lane ``l`` at word
  ``s``, only where a population's biases differ or with per-neuron parameters; else each
  population's parameter row carries its one bias.
- With per-neuron parameters (``ArrayPlan.neuron``), slot ``s`` of lane ``l`` also holds its
  neuron's ``v_th``, ``v_reset``, ``v_rest``, ``decay`` and ``syn_decay`` (those of the
  population where they are one value, also in the slots past its last neuron); a decay as its
  index in ``decay_sets`` or, past :data:`DECAY_TREES_MAX` distinct decays, as its shift terms.
"""

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PopulationPlan", "ProjectionPlan", "ConvWalk", "ArrayPlan", "DECAY_TREES_MAX"]

# Most distinct per-neuron decays (and, apart, synaptic decays) that the cores build in as
# constant leak trees. Past it the bias words carry the shift terms and the cores shift at run
# time, a cost that no longer grows with the decays: on an iCE40 core (16 bits, 4-term learned
# decays) six trees take 785 LUTs, eight 879, the runtime terms 826 (docs/performance.md).
DECAY_TREES_MAX = 6


@dataclass(frozen=True)
class PopulationPlan:
    """One population. ``params`` (a ``NeuronParams``) is ``None`` for an input population."""

    name: str
    size: int
    is_input: bool
    params: object = None
    input_offset: int = 0  # input populations: first index in the input spike vector
    slot_base: int = 0  # LIF populations: first slot in every lane
    rows: int = 0  # LIF populations: slots per lane
    lif_index: int = 0  # LIF populations: row of the parameter memory
    # LIF populations fed by a convolution with lanes over its output channels: the number of
    # channels, whose neurons then lie channel-minor in the slots; 0 for C order.
    channels: int = 0

    def neuron(self, place):
        """The neuron (C order) at ``place = row * lanes + lane`` of the population's slots
        (an int or an integer array): ``place`` itself, or with ``channels`` the neuron
        ``(o, y, x)`` at ``place = (y W + x) channels + o``."""
        if not self.channels:
            return place
        position, channel = divmod(place, self.channels)
        return channel * (self.size // self.channels) + position


@dataclass(frozen=True)
class ConvWalk:
    """The constants of a convolution's kernel walk (``docs/array.md``, "Convolutions").

    A source neuron ``j = (c H + y) W + x`` reaches, for each of its valid kernel taps, the
    ``O_g`` output channels of its group: ``tap_words`` words, one lane each (``vector``
    False), or ``P`` channels a word, one in each lane (``vector``). Targets ``t`` are places
    in the target's slots (``PopulationPlan.neuron``), lane ``t % P``, row ``t // P``. The
    valid taps of row ``y`` form an arithmetic
    progression: ``rows[y] = (count, weight offset, target offset)`` of its first tap, and each
    further tap adds ``row_step = (weight step, target step)``; likewise ``cols[x]`` and
    ``col_step`` for column ``x``. An input pool is folded into the tables (a source row in the
    ragged edge has ``count`` 0). Every product the walk needs is of a signal and a constant.

    Attributes
    ----------
    height, width : int
        ``H``, ``W`` of the source (before pooling).
    group_channels : int
        ``C_g``, input channels per group.
    group_outputs : int
        ``O_g``, output channels per group.
    channel_words : int
        ``kh kw tap_words``, weight words per input channel.
    group_targets : int
        The target place of the first channel of group ``g`` is ``g group_targets``.
    tap_words, word_targets : int
        Words of one tap, and the step of the target place from one to the next.
    vector : bool
        Every lane adds its word (lanes over output channels), else the target's lane only.
    rows, cols : tuple of (int, int, int)
    row_step, col_step : (int, int)
    """

    height: int
    width: int
    group_channels: int
    group_outputs: int
    channel_words: int
    group_targets: int
    tap_words: int
    word_targets: int
    vector: bool
    rows: tuple
    cols: tuple
    row_step: tuple
    col_step: tuple

    def taps(self, j):
        """``(rows entry, cols entry, channel)`` of source neuron ``j``."""
        c, rest = divmod(j, self.height * self.width)
        y, x = divmod(rest, self.width)
        return self.rows[y], self.cols[x], c

    def words(self, j):
        """Cycles of the walk of source neuron ``j``: one per valid tap and output channel of
        its group, one for an event that reaches nothing."""
        (ny, _, _), (nx, _, _), _ = self.taps(j)
        return max(ny * nx * self.tap_words, 1)

    def as_list(self):
        """Every field, for the layout hash."""
        return [
            self.height,
            self.width,
            self.group_channels,
            self.group_outputs,
            self.channel_words,
            self.group_targets,
            self.tap_words,
            self.word_targets,
            self.vector,
            [list(r) for r in self.rows],
            [list(c) for c in self.cols],
            list(self.row_step),
            list(self.col_step),
        ]


@dataclass(frozen=True)
class ProjectionPlan:
    source: int  # population index
    target: int  # population index
    weight_base: int
    recurrent: bool
    conv: ConvWalk | None = None  # a convolution: its kernel walk; None for a dense matrix


@dataclass
class ArrayPlan:
    """Everything the array needs: widths, layout and the initial memory images.

    Attributes
    ----------
    weights : ndarray, shape (lanes, weight_words)
    bias : ndarray, shape (lanes, slots)
    v_init : ndarray, shape (lanes, slots)
    neuron : dict or None
        Only for a network with per-neuron parameters (``docs/network.md``): ``"v_th"``,
        ``"v_reset"``, ``"v_rest"`` to int64 arrays ``(lanes, slots)``, ``"decay"`` and
        ``"syn_decay"`` to object arrays ``(lanes, slots)`` of shift-term tuples (``syn_decay``
        ``None`` where a population is plain LIF).
    """

    lanes: int
    v_width: int
    w_width: int
    acc_width: int
    t_ref_max: int
    populations: list
    projections: list
    weights: np.ndarray
    bias: np.ndarray
    v_init: np.ndarray
    network_hash: str = ""
    extra: dict = field(default_factory=dict)
    neuron: dict | None = None

    @property
    def per_neuron(self):
        """True if the plan has per-neuron parameters: the bias memory words then carry them."""
        return self.neuron is not None

    def population_bias(self, pop):
        """The bias of every neuron of LIF population ``pop`` if it is one value, else ``None``."""
        places = np.arange(pop.size)
        values = self.bias[places % self.lanes, pop.slot_base + places // self.lanes]
        return int(values[0]) if (values == values[0]).all() else None

    @property
    def bias_memory(self):
        """True if the array keeps per-neuron bias words (a bias memory): with per-neuron
        parameters, or where the biases of a population differ. Otherwise every population's
        bias is one value, which its parameter row carries (``docs/array.md``)."""
        return self.per_neuron or any(self.population_bias(p) is None for p in self.lif_populations)

    def _decays(self, pop, key):
        """The ``key`` (``"decay"``, ``"syn_decay"``) of every neuron of ``pop``, in order."""
        if self.neuron is None:
            return [tuple(getattr(pop.params, key))]
        j = range(pop.size)
        return [self.neuron[key][i % self.lanes, pop.slot_base + i // self.lanes] for i in j]

    @property
    def slots(self):
        """Slots per lane over all LIF populations (at least 2: no memory has one word)."""
        return max(sum(p.rows for p in self.populations if not p.is_input), 2)

    @property
    def acc_banks(self):
        """Accumulator banks of ``slots`` words: 2 with a recurrent projection, else 1."""
        return 2 if any(q.recurrent for q in self.projections) else 1

    @property
    def weight_words(self):
        """Weight words per lane (at least 2)."""
        return max(self.weights.shape[1], 2)

    @property
    def n_inputs(self):
        return sum(p.size for p in self.populations if p.is_input)

    @property
    def lif_populations(self):
        return [p for p in self.populations if not p.is_input]

    @property
    def decay_sets(self):
        """The distinct decays of the LIF populations, in population order.

        The array's neuron cores are built for exactly these (their shifts become wiring), so
        they belong to the layout: parameters loaded at run time must use one of them. Not so
        with :attr:`runtime_decay`: the bias words then carry the shift terms.
        """
        sets = []
        for pop in self.lif_populations:
            for decay in self._decays(pop, "decay"):
                if decay not in sets:
                    sets.append(decay)
        return tuple(sets)

    @property
    def runtime_decay(self):
        """True if the neurons' decays are runtime shift terms in the bias words: per-neuron
        parameters with more than :data:`DECAY_TREES_MAX` distinct decays."""
        return self.per_neuron and len(self.decay_sets) > DECAY_TREES_MAX

    @property
    def runtime_syn_decay(self):
        """Like :attr:`runtime_decay`, for the synaptic decays of current-based populations."""
        return self.per_neuron and len(self.syn_decay_sets) > DECAY_TREES_MAX

    @property
    def core_decay_sets(self):
        """The decays the cores build in (``NeuronCore`` ``decay_sets``): :attr:`decay_sets`,
        or ``None`` with :attr:`runtime_decay` (the cores then shift by runtime terms)."""
        return None if self.runtime_decay else self.decay_sets

    @property
    def core_syn_decay_sets(self):
        """The cores' ``syn_decay_sets``: ``None`` without a current-based population or with
        :attr:`runtime_syn_decay`, else :attr:`syn_decay_sets`."""
        return None if not self.synaptic or self.runtime_syn_decay else self.syn_decay_sets

    def layout_hash(self):
        """A hash of everything an elaborated array fixes: widths, lanes, the memory layout of
        populations and projections, ``decay_sets`` and, for an array with a current-based
        population, ``syn_decay_sets`` (each replaced by a flag where the bias words carry
        runtime shift terms instead: :attr:`runtime_decay`) and whether the array has a bias
        memory (:attr:`bias_memory`); not the memory contents.

        Two plans with the same layout hash can be loaded into each other's array at run time
        (``spikeforge.gen.compile.runtime_writes``). Hex, 16 digits.
        """
        layout = {
            "lanes": self.lanes,
            "v_width": self.v_width,
            "w_width": self.w_width,
            "acc_width": self.acc_width,
            "t_ref_max": self.t_ref_max,
            "weight_words": self.weight_words,
            "slots": self.slots,
            "populations": [
                [p.size, p.is_input, p.input_offset, p.slot_base, p.rows]
                + ([p.channels] if p.channels else [])
                for p in self.populations
            ],
            "projections": [
                [q.source, q.target, q.weight_base, q.recurrent]
                + ([q.conv.as_list()] if q.conv is not None else [])
                for q in self.projections
            ],
            "decay_sets": [list(d) for d in self.decay_sets],
        }
        if self.synaptic:
            # Only then: a plain network's hash stays what it was before synaptic currents.
            layout["syn_decay_sets"] = [list(d) for d in self.syn_decay_sets]
        # Runtime shift terms are loadable: the decays then leave the layout.
        if self.runtime_decay:
            del layout["decay_sets"]
            layout["runtime_decay"] = True
        if self.runtime_syn_decay:
            del layout["syn_decay_sets"]
            layout["runtime_syn_decay"] = True
        # Likewise the cores and rows for reset_timing "next" and threshold_compare ">=".
        if self.delayed_reset:
            layout["delayed_reset"] = True
        if self.at_threshold:
            layout["at_threshold"] = True
        # And the bias words that carry per-neuron parameters.
        if self.per_neuron:
            layout["per_neuron"] = True
        # Without a bias memory a runtime load cannot give neurons of a population other biases.
        if not self.bias_memory:
            layout["uniform_bias"] = True
        text = json.dumps(layout, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def synaptic(self):
        """True if a LIF population is current-based: the state memory then holds ``i`` too and
        the parameter rows carry the synaptic decay."""
        return any(p.params.synaptic for p in self.lif_populations)

    @property
    def delayed_reset(self):
        """True if a LIF population has ``reset_timing = "next"``: the state memory then holds
        the pending reset ``s`` and the parameter rows carry ``delayed``."""
        return any(p.params.delayed_reset for p in self.lif_populations)

    @property
    def at_threshold(self):
        """True if a LIF population has ``threshold_compare = ">="``: the parameter rows then
        carry ``at_threshold``."""
        return any(p.params.fires_at_threshold for p in self.lif_populations)

    @property
    def syn_decay_sets(self):
        """The distinct ``syn_decay`` values of the current-based populations, in population
        order; like :attr:`decay_sets`, part of the layout (empty without such populations)."""
        sets = []
        for pop in self.lif_populations:
            if not pop.params.synaptic:
                continue
            for decay in self._decays(pop, "syn_decay"):
                if decay not in sets:
                    sets.append(decay)
        return tuple(sets)

    @property
    def max_size(self):
        return max(p.size for p in self.populations)

    @property
    def has_conv(self):
        """True if a projection is a convolution (the walker then has the kernel walk)."""
        return any(q.conv is not None for q in self.projections)

    def projections_from(self, index):
        return [q for q in self.projections if q.source == index]

    def cycle_bound(self, events):
        """The cycle bound ``L`` of a step (``docs/array.md``, "Cycle model" and
        "Convolutions"): every LIF slot row once, and for every event and projection of its
        population the target's rows (dense) or, for a convolution, its valid taps times
        ``ceil(O_g / P)``.

        ``events`` maps a population index to the neurons (C order) that deliver in the step:
        the input events of an input population, the spikes of a LIF population.
        """
        total = sum(p.rows for p in self.lif_populations)
        for q in self.projections:
            for j in events.get(q.source, ()):
                if q.conv is None:
                    total += self.populations[q.target].rows
                else:
                    (ny, _, _), (nx, _, _), _ = q.conv.taps(int(j))
                    total += ny * nx * -(-q.conv.group_outputs // self.lanes)
        return total

    def max_step_cycles(self, stages=4):
        """An upper bound on the cycles of one timestep, with every neuron spiking.

        Every fan-out word walked once per source spike, every slot updated, one cycle per
        event and per spike word, and a generous per-population allowance for pipeline fill and
        drain. Drivers use
        it to turn a stuck design into an error instead of a hang.
        """
        events = sum(p.size for p in self.populations)
        per_population = 2 * stages + 16
        # A convolution walks its kernel words once per (source, tap): more than it stores.
        conv_words = sum(
            sum(q.conv.words(j) for j in range(self.populations[q.source].size))
            for q in self.projections
            if q.conv is not None
        )
        return (
            self.weights.shape[1]
            + conv_words
            + 2 * self.slots
            + events
            + per_population * (len(self.populations) + 1)
        )
