"""spikeforge networks to NIR graphs (``docs/nir.md``, "Export").

:func:`export_network` writes a network as a NIR graph whose
:func:`~spikeforge.gen.nir_import.import_graph` gives the network back exactly: integers as
floats at scale 1, and node metadata for what NIR has no field for.
"""

import io
import json

import nir
import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.limits import v_range
from ..spec.params import decay_value
from .network import FORMAT
from .network_conv import ConvProjection
from .nir_conv import add_conv_export

__all__ = ["export_network", "export_nir"]


def export_network(net):
    """A NIR graph of ``net`` whose :func:`import_graph` gives ``net`` back exactly.

    ``dt = 1``; a population with decay value ``d != 0`` is an LIF (or LI, see ``docs/nir.md``)
    with ``tau = r = 1/d``, so that ``dt r / tau = 1``; ``d = 0`` is an IF with ``r = 1``. A
    current-based population is a CubaLIF (or CubaLI) with also ``tau_syn = w_in = 1/d_syn``.
    Weights and voltages are the integers as floats; the node metadata ``spikeforge_scale = 1``
    tells the importer so, and further metadata carries what NIR has no field for.

    Raises
    ------
    SpikeforgeError
        A current-based population whose ``decay`` or ``syn_decay`` has the value 0: NIR's
        CubaLIF has no infinite time constant.
    """
    v_hi = v_range(net.v_width)[1]
    nodes, edges = {}, []
    sources = {proj.source for proj in net.projections}
    first_in = {}
    for i, proj in enumerate(net.projections):
        first_in.setdefault(proj.target, i)
    for pop in net.populations:
        if pop.is_input:
            nodes[pop.name] = nir.Input(input_type=np.array([pop.size]))
            continue
        nodes[pop.name] = _neuron_node(pop, _is_readout(pop, v_hi, sources))
        nodes[f"{pop.name}:out"] = nir.Output(output_type=np.array([pop.size]))
        edges.append((pop.name, f"{pop.name}:out"))
        if pop.name not in first_in and pop.bias.any():
            # No projection to carry the bias: an Affine without inputs outputs just its bias.
            nodes[f"{pop.name}:bias"] = nir.Affine(
                weight=np.zeros((pop.size, 1)), bias=pop.bias.astype(np.float64)
            )
            edges.append((f"{pop.name}:bias", pop.name))
    for i, proj in enumerate(net.projections):
        if isinstance(proj, ConvProjection):
            # Pools and kernels: gen/nir_conv.py.
            edges += add_conv_export(nodes, net, proj, first_in[proj.target] == i)
            continue
        name = f"{proj.source}->{proj.target}"
        weight = proj.weights.T.astype(np.float64)
        if first_in[proj.target] == i:
            bias = net.population(proj.target).bias.astype(np.float64)
            nodes[name] = nir.Affine(weight=weight, bias=bias)
        else:
            nodes[name] = nir.Linear(weight=weight)
        edges += [(proj.source, name), (name, proj.target)]
    # Type checking would ask every node for shapes that the Affine-without-input case lacks.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_graph_metadata(net), type_check=False)


def _graph_metadata(net):
    """The graph's ``dt``, widths, population order and projection order."""
    meta = {
        "spikeforge_format": FORMAT,
        "spikeforge_v_width": net.v_width,
        "spikeforge_w_width": net.w_width,
        "dt": 1.0,
        "spikeforge_order": ",".join(p.name for p in net.populations),
        "spikeforge_projections": ",".join(f"{p.source}>{p.target}" for p in net.projections),
    }
    if net.acc_width_explicit:
        meta["spikeforge_acc_width"] = net.acc_width
    return meta


def _is_readout(pop, v_hi, sources):
    """Whether ``pop`` is exactly what importing an LI (or CubaLI) gives: it never fires, has
    NIR's defaults for what LI lacks, a finite time constant, and feeds nobody."""
    p = pop.params
    return (
        p.v_th == p.v_peak == v_hi
        and p.v_reset == 0
        and p.reset_mode == "zero"
        and p.t_ref == 0
        and all(decay_value(d) != 0 for d in pop.decays())
        and pop.name not in sources
        and not {"v_th", "v_reset"} & set(pop.per_neuron)
    )


def _neuron_node(pop, readout):
    """The LIF, IF, LI, CubaLIF or CubaLI node of a neuron population, ``dt r / tau = 1``."""
    p = pop.params
    # Decay values per neuron (all alike unless the decays are per neuron).
    d = np.array([decay_value(x) for x in pop.decays()])
    v_rest = pop.column("v_rest")
    meta = {
        "spikeforge_scale": 1.0,
        "spikeforge_decay": _terms_json(pop, "decay"),
        "spikeforge_bias_per_neuron": int(pop.per_neuron_bias),
    }
    if p.synaptic:
        d_syn = _cuba_decays(pop, d)
        meta["spikeforge_syn_decay"] = _terms_json(pop, "syn_decay")
    if not readout:
        meta.update(
            spikeforge_v_peak=p.v_peak,
            spikeforge_t_ref=p.t_ref,
            spikeforge_reset_mode=p.reset_mode,
        )
        # NIR has neither; written only when not the default, so older exports are unchanged.
        if p.delayed_reset:
            meta["spikeforge_reset_timing"] = p.reset_timing
        if p.fires_at_threshold:
            meta["spikeforge_threshold_compare"] = p.threshold_compare
    ones = np.ones(pop.size)
    if p.synaptic:
        kind = nir.CubaLI if readout else nir.CubaLIF
        args = dict(
            tau_syn=ones / d_syn,
            tau_mem=ones / d,
            r=ones / d,
            v_leak=ones * v_rest,
            w_in=ones / d_syn,
        )
    elif (d == 0).any():
        if d.any():
            raise SpikeforgeError(
                f"population {pop.name!r}: its per-neuron decays mix leaky neurons and "
                f"neurons without leak, which no one NIR node holds; split the population"
            )
        # IF has no v_leak to start from.
        if "v_rest" in pop.per_neuron:
            raise SpikeforgeError(
                f"population {pop.name!r}: NIR's IF has no v_leak for a per-neuron v_rest; "
                f"give the population one v_rest"
            )
        meta["spikeforge_v_rest"] = p.v_rest
        kind, args = nir.IF, dict(r=ones)
    else:
        kind = nir.LI if readout else nir.LIF
        args = dict(tau=ones / d, r=ones / d, v_leak=ones * v_rest)
    if not readout:
        # Per-neuron values are arrays in NIR already; one value is repeated.
        args.update(v_threshold=ones * pop.column("v_th"), v_reset=ones * pop.column("v_reset"))
    return kind(**args, metadata=meta)


def _terms_json(pop, key):
    """The metadata of ``pop``'s ``decay`` or ``syn_decay``: a JSON list of shift terms, or
    with per-neuron decays a list of one such list per neuron."""
    if key in pop.per_neuron:
        return json.dumps([list(terms) for terms in pop.per_neuron[key]])
    return json.dumps(list(getattr(pop.params, key)))


def _cuba_decays(pop, d):
    """The synaptic decay values (per neuron) of a current-based population whose decay values
    are ``d``; all must be nonzero."""
    syn = pop.decays("syn_decay")
    d_syn = np.array([decay_value(x) for x in syn])
    for key, decays, values, tau in (
        ("decay", pop.decays(), d, "tau_mem"),
        ("syn_decay", syn, d_syn, "tau_syn"),
    ):
        if (values == 0).any():
            terms = decays[int(np.argmin(values != 0))]
            raise SpikeforgeError(
                f"population {pop.name!r}: {key} {list(terms)} has the value 0, "
                f"which NIR's CubaLIF cannot express (it needs a finite {tau})"
            )
    return d_syn


def export_nir(net, path):
    """Write :func:`export_network` of ``net`` to the ``.nir`` file ``path``."""
    # HDF5 is written in memory first: the library crashes the process (not an OSError) when
    # the disk refuses a write of its own, and Python's own write reports it cleanly.
    buffer = io.BytesIO()
    nir.write(buffer, export_network(net))
    with open(path, "wb") as file:
        file.write(buffer.getvalue())
