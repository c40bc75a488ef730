"""Network description to the memory images of the neuron array (``spikeforge.hdl.plan``)."""

from dataclasses import dataclass

import numpy as np

from ..hdl.arith import bits_for, ceil_div
from ..hdl.array import CfgMemory
from ..hdl.array_ports import neuron_words, plan_word_layout
from ..hdl.neuron import pack_params, params_layout
from ..hdl.plan import ArrayPlan, PopulationPlan, ProjectionPlan
from ..spec.errors import SpikeforgeError
from ..spec.limits import check_lanes
from .conv_walk import conv_walk, conv_weight_words
from .network_conv import ConvProjection

__all__ = ["Capacity", "compile_network", "runtime_writes"]

# The integer parameters a population may give per neuron (docs/network.md).
_INTS = ("v_th", "v_reset", "v_rest")


@dataclass(frozen=True)
class Capacity:
    """Per-lane memory limits of a target (a board, or ``None`` for unlimited).

    Attributes
    ----------
    weight_words : int or None
        Weight memory words per lane.
    slots : int or None
        Neurons (membrane, refractory counter, bias) per lane.
    """

    weight_words: int | None = None
    slots: int | None = None


def compile_network(net, lanes=1, capacity=Capacity()):
    """Lay ``net`` out over ``lanes`` lanes and return the :class:`ArrayPlan`.

    Projections are ordered by source population (then file order) so that the fan-out of one
    event is contiguous in the walk. A convolution keeps its kernel, the same words in every
    lane, and walks it (:mod:`spikeforge.gen.conv_walk`); a dense projection with an input pool
    is stored unrolled, its pooled rows repeated for every source neuron of their window.

    Raises
    ------
    SpikeforgeError
        ``lanes`` not one of 1, 2, 4, 8, 16; or a memory of ``capacity`` too small, naming it.
    """
    check_lanes(lanes, "lanes", SpikeforgeError)
    pops = []
    slot_base = input_offset = lif_index = 0
    channels = _channel_minor(net, lanes)
    for index, pop in enumerate(net.populations):
        if pop.is_input:
            pops.append(PopulationPlan(pop.name, pop.size, True, input_offset=input_offset))
            input_offset += pop.size
        else:
            rows = ceil_div(pop.size, lanes)
            pops.append(
                PopulationPlan(
                    pop.name,
                    pop.size,
                    False,
                    params=pop.params,
                    slot_base=slot_base,
                    rows=rows,
                    lif_index=lif_index,
                    channels=channels.get(index, 0),
                )
            )
            slot_base += rows
            lif_index += 1
    slots = max(slot_base, 2)  # no memory of the array has a single word

    order = sorted(range(len(net.projections)), key=lambda n: (net.projections[n].source_index, n))
    projs, blocks = [], []
    weight_base = 0
    for n in order:
        proj = net.projections[n]
        target = pops[proj.target_index]
        if isinstance(proj, ConvProjection) and proj.geometry.conv:
            conv = conv_walk(proj.geometry, lanes, bool(target.channels))
            projs.append(
                ProjectionPlan(
                    proj.source_index, proj.target_index, weight_base, proj.recurrent, conv
                )
            )
            words = conv_weight_words(proj, conv, lanes)
            blocks.append(words.T)
            weight_base += words.shape[1]
            continue
        matrix = proj.dense() if isinstance(proj, ConvProjection) else proj.weights
        # Columns in the order of the target's slots.
        matrix = matrix[:, target.neuron(np.arange(target.size))]
        projs.append(
            ProjectionPlan(proj.source_index, proj.target_index, weight_base, proj.recurrent)
        )
        # Pad the target axis to whole rows, then deal columns out to lanes: word c of lane l
        # holds column c * lanes + l.
        padded = np.zeros((matrix.shape[0], target.rows * lanes), np.int64)
        padded[:, : target.size] = matrix
        blocks.append(padded.reshape(matrix.shape[0], target.rows, lanes))
        weight_base += matrix.shape[0] * target.rows
    if blocks:
        weights = np.concatenate([b.reshape(-1, lanes) for b in blocks]).T.copy()
    else:
        weights = np.zeros((lanes, 0), np.int64)
    if weights.shape[1] < 2:
        weights = np.pad(weights, ((0, 0), (0, 2 - weights.shape[1])))

    bias = np.zeros((lanes, slots), np.int64)
    v_init = np.zeros((lanes, slots), np.int64)
    t_ref_max = 0
    for pop, plan in zip(net.populations, pops):
        if pop.is_input:
            continue
        padded = np.zeros(plan.rows * lanes, np.int64)
        padded[: pop.size] = np.broadcast_to(pop.bias, pop.size)[plan.neuron(np.arange(pop.size))]
        bias[:, plan.slot_base : plan.slot_base + plan.rows] = padded.reshape(plan.rows, lanes).T
        v_init[:, plan.slot_base : plan.slot_base + plan.rows] = pop.params.v_rest
        t_ref_max = max(t_ref_max, pop.params.t_ref)

    neuron = _neuron_images(net, pops, lanes, slots) if _has_per_neuron(net) else None
    if neuron is not None:
        v_init = neuron["v_rest"].copy()

    if capacity.weight_words is not None and weights.shape[1] > capacity.weight_words:
        raise SpikeforgeError(
            f"network needs {weights.shape[1]} weight words per lane, the target holds "
            f"{capacity.weight_words} (lanes={lanes}); use more lanes or a smaller network"
        )
    if capacity.slots is not None and slot_base > capacity.slots:
        raise SpikeforgeError(
            f"network needs {slot_base} neuron slots per lane, the target holds "
            f"{capacity.slots} (lanes={lanes}); use more lanes or a smaller network"
        )

    return ArrayPlan(
        lanes=lanes,
        v_width=net.v_width,
        w_width=net.w_width,
        acc_width=net.acc_width,
        t_ref_max=t_ref_max,
        populations=pops,
        projections=projs,
        weights=weights,
        bias=bias,
        v_init=v_init,
        network_hash=net.network_hash(),
        neuron=neuron,
    )


def _has_per_neuron(net):
    return any(pop.per_neuron for pop in net.lif_populations)


def _neuron_images(net, pops, lanes, slots):
    """The per-slot parameters of :attr:`ArrayPlan.neuron`: the neuron at place ``i`` of a
    population (``PopulationPlan.neuron``) at lane ``i % lanes``, slot ``slot_base + i // lanes``;
    slots past a population's last neuron (and
    past the last population) take the values of the population's (the first population's)
    neuron 0."""
    first = net.lif_populations[0].params
    images = {key: np.full((lanes, slots), getattr(first, key), np.int64) for key in _INTS}
    for key in ("decay", "syn_decay"):
        default = getattr(first, key)
        images[key] = _objects([None if default is None else tuple(default)] * (lanes * slots))
        images[key] = images[key].reshape(lanes, slots)
    for pop, plan in zip(net.populations, pops):
        if pop.is_input:
            continue
        span = slice(plan.slot_base, plan.slot_base + plan.rows)
        # Places in slot order: a channel-minor population holds its neurons permuted.
        order = plan.neuron(np.arange(pop.size))
        for key in _INTS:
            padded = np.full(plan.rows * lanes, getattr(pop.params, key), np.int64)
            padded[: pop.size] = np.asarray(pop.column(key))[order]
            images[key][:, span] = padded.reshape(plan.rows, lanes).T
        for key in ("decay", "syn_decay"):
            if key == "syn_decay" and not pop.params.synaptic:
                values = [None] * pop.size
                pad = None
            else:
                decays = list(pop.decays(key))
                values = [decays[n] for n in order]
                pad = values[0]
            padded = _objects(values + [pad] * (plan.rows * lanes - pop.size))
            images[key][:, span] = padded.reshape(plan.rows, lanes).T
    return images


def _objects(items):
    """A 1-d object array of ``items`` (tuples stay elements, NumPy would make them an axis)."""
    out = np.empty(len(items), object)
    for n, item in enumerate(items):
        out[n] = item
    return out


def _channel_minor(net, lanes):
    """``{population index: channels}`` of the LIF populations whose slots hold their neurons
    channel-minor: those fed by a convolution whose lanes can run over output channels (``lanes``
    divides the channels of a group), where every convolution into them has the same output
    channels."""
    if lanes == 1:
        return {}
    outputs = {}
    for proj in net.projections:
        if isinstance(proj, ConvProjection) and proj.geometry.conv:
            outputs.setdefault(proj.target_index, []).append(proj.geometry)
    channels = {}
    for index, geometries in outputs.items():
        out = {g.out_channels for g in geometries}
        if len(out) == 1 and any((g.out_channels // g.groups) % lanes == 0 for g in geometries):
            channels[index] = out.pop()
    return channels


def runtime_writes(plan, memories=("weights", "bias", "params"), weight_burst=1):
    """The ``cfg`` port writes that load ``plan``'s contents into a running array.

    An array elaborated from another plan with the same layout (same ``layout_hash``: same
    populations, sizes, projections, lanes, widths, and ``decay_sets`` and ``syn_decay_sets``
    unless the bias words carry them as runtime terms) then computes exactly what ``plan``
    describes; the host link sends these to change weights and parameters without a rebuild.

    Without a bias memory (``plan.bias_memory`` false) the biases go in the PARAMS rows and
    there are no BIAS writes; a plan whose biases differ within a population has another layout
    hash, so it is not loaded into such an array.

    ``weight_burst`` is the array's ``weight_burst``: an array with runtime weights takes that
    many consecutive weight words of one lane per write, and every word is written (its store
    has no initial contents).

    Yields
    ------
    (mem, lane, addr, data) : tuple of int
        ``mem`` is one of ``CfgMemory.WEIGHTS``, ``CfgMemory.BIAS``, ``CfgMemory.PARAMS`` of
        :mod:`spikeforge.hdl.array`; ``data`` is the raw word (the words of a burst, the first
        in the low bits).
    """

    def raw(value, width):
        return int(value) & ((1 << width) - 1)

    if "weights" in memories:
        for lane in range(plan.lanes):
            words = plan.weights[lane]
            for addr in range(0, len(words), weight_burst):
                data = 0
                for n, word in enumerate(words[addr : addr + weight_burst]):
                    data |= raw(word, plan.w_width) << (n * plan.w_width)
                yield CfgMemory.WEIGHTS, lane, addr, data
    if "bias" in memories and plan.per_neuron:
        # The bias words carry the per-neuron parameters too.
        word_layout = plan_word_layout(plan)
        for lane in range(plan.lanes):
            for addr, word in enumerate(neuron_words(plan, lane)):
                yield CfgMemory.BIAS, lane, addr, word_layout.const(word).as_value().value
    elif "bias" in memories and plan.bias_memory:
        for lane in range(plan.lanes):
            for addr, word in enumerate(plan.bias[lane]):
                yield CfgMemory.BIAS, lane, addr, raw(word, plan.v_width)
    if "params" in memories:
        synaptic = dict(
            synaptic=plan.synaptic,
            syn_decay_sets=plan.core_syn_decay_sets,
            delayed_reset=plan.delayed_reset,
            at_threshold=plan.at_threshold,
        )
        decay_sets = plan.core_decay_sets
        layout = params_layout(plan.v_width, bits_for(plan.t_ref_max), decay_sets, **synaptic)
        for index, pop in enumerate(plan.lif_populations):
            row = pack_params(pop.params, decay_sets, **synaptic)
            # With a bias memory the array takes each neuron's bias from it, else from the row.
            row["bias"] = 0 if plan.bias_memory else plan.population_bias(pop)
            yield CfgMemory.PARAMS, 0, index, layout.const(row).as_value().value
