"""The quantization report of ``spikeforge import`` (``docs/nir.md``).

:func:`simulate_float` runs the NIR semantics of an imported graph in float64 (forward Euler,
the same evaluation order and one-step delays as the network); :func:`quantization_report`
compares it with the fixed-point golden model on the same input spikes.
"""

import json

import numpy as np

from ..gen.nir_graph import READOUTS
from ..gen.spike_io import check_input_spikes
from ..spec.params import decay_value
from .network_golden import run_network

__all__ = ["simulate_float", "quantization_report", "format_report", "write_report"]


def simulate_float(model, spikes):
    """Run the float64 model of an imported graph.

    Parameters
    ----------
    model : spikeforge.gen.nir_model.FloatModel
    spikes : array_like of 0/1, shape (T, n_in) or (B, T, n_in)

    Returns
    -------
    spikes, v : dict of str to ndarray
        Per neuron population, ``(T, size)`` or ``(B, T, size)``: the 0/1 spikes (uint8) and the
        membrane after each step (float64; after the reset on a spiking step).
    """
    net = model.network
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    n_batch, n_steps, _ = inputs.shape
    index = {p.name: i for i, p in enumerate(model.populations)}
    into = {p.name: [q for q in model.projections if q.target == p.name] for p in model.populations}
    neurons = [p for p in model.populations if p.kind != "Input"]
    v = {p.name: np.full((n_batch, p.size), p.v_leak) for p in neurons}
    r = {p.name: np.zeros((n_batch, p.size), np.int64) for p in neurons}
    # The synaptic current of CubaLIF and CubaLI, in the units of the effective weights.
    i = {p.name: np.zeros((n_batch, p.size)) for p in neurons if p.syn_ratio is not None}
    prev = {p.name: np.zeros((n_batch, p.size)) for p in model.populations}
    out_s = {p.name: np.zeros((n_batch, n_steps, p.size), np.uint8) for p in neurons}
    out_v = {p.name: np.zeros((n_batch, n_steps, p.size)) for p in neurons}
    # A float membrane may diverge (an unstable readout): inf is the float semantics then.
    with np.errstate(over="ignore", invalid="ignore"):
        _steps(model, inputs, into, index, (v, r, i), prev, out_s, out_v)
    if not batched:
        out_s = {k: a[0] for k, a in out_s.items()}
        out_v = {k: a[0] for k, a in out_v.items()}
    return out_s, out_v


def _steps(model, inputs, into, index, state, prev, out_s, out_v):
    net = model.network
    v, r, i = state
    n_batch, n_steps, _ = inputs.shape
    for t in range(n_steps):
        now = {}
        for pop in model.populations:
            if pop.kind == "Input":
                now[pop.name] = inputs[:, t, net.input_slice(pop.name)].astype(np.float64)
                continue
            current = np.broadcast_to(pop.bias, (n_batch, pop.size)).copy()
            for proj in into[pop.name]:
                delayed = index[proj.source] >= index[pop.name]
                current += (prev if delayed else now)[proj.source] @ proj.weights
            if pop.syn_ratio is not None:
                # Current first; the membrane integrates the new current (docs/nir.md).
                i[pop.name] = i[pop.name] - pop.syn_ratio * i[pop.name] + current
                current = i[pop.name]
            v_old, r_old = v[pop.name], r[pop.name]
            v_new = v_old + pop.ratio * (pop.v_leak - v_old) + current
            refractory = r_old > 0
            fire = ~refractory & (v_new > pop.v_threshold)
            after = pop.v_reset if pop.reset_mode == "zero" else v_new - pop.v_threshold
            v[pop.name] = np.where(refractory, v_old, np.where(fire, after, v_new))
            r[pop.name] = np.where(refractory, r_old - 1, np.where(fire, pop.t_ref, 0))
            now[pop.name] = fire.astype(np.float64)
            out_s[pop.name][:, t] = fire
            out_v[pop.name][:, t] = v[pop.name]
        prev = now


def _counts(spikes):
    """Spikes per neuron, summed over time (and batch)."""
    return spikes.reshape(-1, spikes.shape[-1]).sum(axis=0).astype(np.int64)


def quantization_report(model, spikes, source):
    """Compare the float64 NIR semantics with the fixed-point network on ``spikes``.

    Parameters
    ----------
    model : spikeforge.gen.nir_model.FloatModel
    spikes : array of 0/1, shape (T, n_in) or (B, T, n_in)
    source : str
        Where the spikes came from, recorded in the report.

    Returns
    -------
    dict
        JSON-ready; one entry per neuron population (``docs/nir.md`` lists the fields).
    """
    net = model.network
    any_li = any(p.kind in READOUTS for p in model.populations)
    fixed = run_network(net, spikes, trace=any_li)
    flt_s, flt_v = simulate_float(model, spikes)
    pops = []
    for pop in model.populations:
        if pop.kind == "Input":
            continue
        params = net.neuron_params(pop.name)
        d = decay_value(params.decay)
        entry = {
            "name": pop.name,
            "node": pop.node,
            "kind": pop.kind,
            "size": pop.size,
            "scale": pop.scale,
            "dt_over_tau": pop.ratio,
            "decay": list(params.decay),
            "decay_value": d,
            "decay_error": d - pop.ratio,
            "decay_relative_error": (d - pop.ratio) / pop.ratio if pop.ratio else 0.0,
            "v_th": params.v_th,
            "v_rest": params.v_rest,
            "v_reset": params.v_reset,
        }
        floats = [p.weights for p in model.projections if p.target == pop.name]
        ints = [p.weights for p in net.incoming(pop.name)]
        flat_f = np.concatenate([w.ravel() for w in floats]) if floats else np.zeros(0)
        flat_i = np.concatenate([w.ravel() for w in ints]) if ints else np.zeros(0, np.int64)
        entry["weights"] = {
            "count": int(flat_f.size),
            "float_min": float(flat_f.min()) if flat_f.size else 0.0,
            "float_max": float(flat_f.max()) if flat_f.size else 0.0,
            "int_min": int(flat_i.min()) if flat_i.size else 0,
            "int_max": int(flat_i.max()) if flat_i.size else 0,
            "clipped": pop.clipped,
            "zeroed": pop.zeroed,
        }
        if pop.syn_ratio is not None:
            syn = decay_value(params.syn_decay)
            entry.update(
                {
                    "syn_dt_over_tau": pop.syn_ratio,
                    "syn_decay": list(params.syn_decay),
                    "syn_decay_value": syn,
                    "syn_decay_error": syn - pop.syn_ratio,
                    "syn_decay_relative_error": (
                        (syn - pop.syn_ratio) / pop.syn_ratio if pop.syn_ratio else 0.0
                    ),
                }
            )
        if pop.kind in READOUTS:
            with np.errstate(over="ignore", invalid="ignore"):
                error = np.abs(fixed.v[pop.name] * pop.scale - flt_v[pop.name])
                entry["readout"] = {
                    "max_abs_error": float(error.max()),
                    "float_range": float(np.ptp(flt_v[pop.name])),
                }
        else:
            want, got = _counts(flt_s[pop.name]), _counts(fixed.spikes[pop.name])
            entry["spikes"] = {
                "float": int(want.sum()),
                "fixed": int(got.sum()),
                "neurons_equal": float((want == got).mean()),
                "mean_abs_count_difference": float(np.abs(want - got).mean()),
            }
        pops.append(entry)
    arr = np.asarray(spikes)
    return {
        "network_hash": net.network_hash(),
        "dt": model.dt,
        "v_width": net.v_width,
        "w_width": net.w_width,
        "acc_width": net.acc_width,
        "input": source,
        "steps": int(arr.shape[-2]),
        "runs": int(arr.shape[0]) if arr.ndim == 3 else 1,
        "populations": pops,
    }


def format_report(report):
    """The report as text: one header line and one line per population."""
    lines = [
        f"quantization: dt={report['dt']:g} s, v_width={report['v_width']}, "
        f"w_width={report['w_width']}, acc_width={report['acc_width']}, "
        f"{report['steps']} steps x {report['runs']} runs of {report['input']}"
    ]
    for p in report["populations"]:
        w = p["weights"]
        text = (
            f"  {p['name']} ({p['kind']}, {p['size']}): scale {p['scale']:.4g}/LSB, "
            f"dt/tau {p['dt_over_tau']:.4g} ~ {p['decay']} = {p['decay_value']:.4g} "
            f"(error {p['decay_error']:+.2g}), "
        )
        if "syn_decay" in p:
            text += (
                f"dt/tau_syn {p['syn_dt_over_tau']:.4g} ~ {p['syn_decay']} = "
                f"{p['syn_decay_value']:.4g} (error {p['syn_decay_error']:+.2g}), "
            )
        text += (
            f"weights {w['float_min']:.3g}...{w['float_max']:.3g} -> "
            f"{w['int_min']}...{w['int_max']}, {w['clipped']} clipped, "
            f"{w['zeroed']} zeroed, "
        )
        if "spikes" in p:
            s = p["spikes"]
            text += (
                f"spikes float {s['float']} / fixed {s['fixed']}, "
                f"{100 * s['neurons_equal']:.0f}% of neurons equal"
            )
        else:
            r = p["readout"]
            text += (
                f"readout max error {r['max_abs_error']:.3g} over a range of {r['float_range']:.3g}"
            )
        lines.append(text)
    return "\n".join(lines)


def write_report(report, path):
    """Write the report as JSON (sorted keys, so the file is deterministic)."""
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")
