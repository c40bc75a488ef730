"""The quantization report of ``spikeforge import`` (``docs/nir.md``).

:func:`simulate_float` runs an imported graph in float64 as its framework's preset reads it
(forward Euler or exponential decays, the preset's input gains folded into the weights, its
reset, reset timing and threshold test, and several spikes per step where the preset allows them;
the same evaluation order and one-step delays as the network). :func:`quantization_report`
compares it with the fixed-point golden model on the same input spikes, per layer and per sample.
"""

import json
import math

import numpy as np

from ..gen.nir_conv import FloatConvProjection
from ..gen.nir_graph import READOUTS
from ..gen.nir_presets import PRESETS
from ..gen.spike_io import check_input_spikes
from ..spec.errors import SpikeforgeError
from ..spec.limits import V_WIDTH_RANGE, W_WIDTH_RANGE, v_range
from ..spec.params import decay_value
from .network_golden import run_network

__all__ = [
    "AUTO",
    "simulate_float",
    "quantization_report",
    "hidden_agreement",
    "smallest_widths",
    "format_report",
    "write_report",
]

# The width argument that asks :func:`smallest_widths` to choose.
AUTO = "auto"


def simulate_float(model, spikes, multi_spike=None):
    """Run the float64 model of an imported graph as its preset's framework runs it.

    Parameters
    ----------
    model : spikeforge.gen.nir_model.FloatModel
    spikes : array_like of 0/1, shape (T, n_in) or (B, T, n_in)
    multi_spike : bool, optional
        A neuron whose membrane reaches ``k`` thresholds (``k >= 1``, positive threshold) emits
        ``k`` spikes in one step, all of which count downstream and in the reset (Sinabs' and
        Rockpool's default); by default the preset's.

    Returns
    -------
    spikes, v : dict of str to ndarray
        Per neuron population, ``(T, size)`` or ``(B, T, size)``: the spike counts (int32; 0 or
        1 without ``multi_spike``) and the membrane after each step (float64; after a same-step
        reset, before a next-step one).
    """
    if multi_spike is None:
        multi_spike = PRESETS[model.preset].multi_spike
    net = model.network
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    n_batch, n_steps, _ = inputs.shape
    neurons = [p for p in model.populations if p.kind != "Input"]
    state = {p.name: _FloatState(p, n_batch) for p in neurons}
    deliveries = [(p.source, p.target, _delivery(p)) for p in model.projections]
    index = {p.name: i for i, p in enumerate(model.populations)}
    out_s = {p.name: np.zeros((n_batch, n_steps, p.size), np.int32) for p in neurons}
    out_v = {p.name: np.zeros((n_batch, n_steps, p.size)) for p in neurons}
    prev = {p.name: np.zeros((n_batch, p.size)) for p in model.populations}
    # A float membrane may diverge (an unstable readout): inf is the float semantics then.
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(n_steps):
            now = {}
            for pop in model.populations:
                if pop.kind == "Input":
                    now[pop.name] = inputs[:, t, net.input_slice(pop.name)].astype(np.float64)
                    continue
                current = np.broadcast_to(pop.bias, (n_batch, pop.size)).copy()
                for source, target, deliver in deliveries:
                    if target == pop.name:
                        delayed = index[source] >= index[pop.name]
                        current += deliver((prev if delayed else now)[source])
                count = state[pop.name].step(current, multi_spike)
                now[pop.name] = count.astype(np.float64)
                out_s[pop.name][:, t] = count
                out_v[pop.name][:, t] = state[pop.name].v
            prev = now
    if not batched:
        out_s = {k: a[0] for k, a in out_s.items()}
        out_v = {k: a[0] for k, a in out_v.items()}
    return out_s, out_v


class _FloatState:
    """The float64 state of one neuron population and its step (``docs/neuron.md`` in real
    numbers, with the population's reset timing and threshold test)."""

    def __init__(self, pop, n_batch):
        self.pop = pop
        self.v = np.full((n_batch, pop.size), pop.v_leak)
        self.r = np.zeros((n_batch, pop.size), np.int64)
        # The synaptic current of CubaLIF and CubaLI, in the units of the effective weights.
        self.i = np.zeros((n_batch, pop.size)) if pop.syn_ratio is not None else None
        # Spikes of the previous step whose reset is still due (reset_timing "next").
        self.pending = np.zeros((n_batch, pop.size))

    def step(self, current, multi_spike):
        """One step on the summed input ``current``; returns the spike counts (int32)."""
        pop = self.pop
        if self.i is not None:
            # Current first; the membrane integrates the new current (docs/nir.md).
            self.i = self.i - pop.syn_ratio * self.i + current
            current = self.i
        # u: what the leak acts on; base: what leak and input are added to. Both v, unless a
        # next-step reset is due: zero mode starts from v_reset, subtract mode takes the
        # thresholds off after the leak of the unreset membrane.
        due = self.pending > 0
        u = np.where(due, pop.v_reset, self.v) if pop.reset_mode == "zero" else self.v
        base = u if pop.reset_mode == "zero" else self.v - self.pending * pop.v_threshold
        v_new = base + pop.ratio * (pop.v_leak - u) + current
        refractory = self.r > 0
        if pop.threshold_compare == ">=":
            fire = ~refractory & (v_new >= pop.v_threshold)
        else:
            fire = ~refractory & (v_new > pop.v_threshold)
        count = fire.astype(np.float64)
        if multi_spike and np.all(pop.v_threshold > 0):
            count = np.where(fire, np.maximum(1.0, np.floor(v_new / pop.v_threshold)), 0.0)
        if pop.reset_timing == "next":
            after, self.pending = v_new, count
        else:
            after = pop.v_reset if pop.reset_mode == "zero" else v_new - count * pop.v_threshold
        self.v = np.where(refractory, base, np.where(fire, after, v_new))
        self.r = np.where(refractory, self.r - 1, np.where(fire, pop.t_ref, 0))
        return count.astype(np.int32)


def _delivery(proj):
    """A function from the source's activity ``(B, size of source)`` to the float input it
    gives the target ``(B, size of target)``: a matrix product, or the pool and convolution of
    a :class:`~spikeforge.gen.nir_conv.FloatConvProjection`."""
    if not isinstance(proj, FloatConvProjection):
        return lambda x: x @ proj.weights
    g = proj.geometry
    c, h, w = g.in_shape
    _, hp, wp = g.pooled
    py, px = g.pool

    def pooled(x):
        # Sum pooling over whole windows, in the C order of (C, Hp, Wp) (ConvGeometry.pool_map).
        x = x.reshape(-1, c, h, w)[:, :, : hp * py, : wp * px]
        return x.reshape(-1, c, hp, py, wp, px).sum(axis=(3, 5)).reshape(x.shape[0], -1)

    if not g.conv:
        return lambda x: pooled(x) @ proj.weights
    src, dst, tap = g.fanout()
    kernel = proj.weights.reshape(-1)[tap]
    starts = np.searchsorted(src, np.arange(g.n_pooled + 1))

    def convolved(x):
        # Only the active sources' fan-outs (fanout() lists synapses by source).
        x = pooled(x)
        b, s = np.nonzero(x)
        lengths = starts[s + 1] - starts[s]
        first = np.repeat(starts[s] - (np.cumsum(lengths) - lengths), lengths)
        syn = np.arange(int(lengths.sum())) + first
        flat = np.repeat(b, lengths) * g.n_out + dst[syn]
        sums = np.bincount(
            flat, weights=np.repeat(x[b, s], lengths) * kernel[syn], minlength=x.shape[0] * g.n_out
        )
        return sums.reshape(x.shape[0], g.n_out)

    return convolved


# -- the report ------------------------------------------------------------------------------------


def quantization_report(model, spikes, source, multi_spike=None):
    """Compare the float64 semantics of the graph's preset with the fixed-point network on
    ``spikes``.

    Parameters
    ----------
    model : spikeforge.gen.nir_model.FloatModel
    spikes : array of 0/1, shape (T, n_in) or (B, T, n_in)
        Each run of the batch is one sample.
    source : str
        Where the spikes came from, recorded in the report.
    multi_spike : bool, optional
        As in :func:`simulate_float`; by default the preset's.

    Returns
    -------
    dict
        JSON-ready; one entry per neuron population and the warnings (``docs/nir.md`` lists the
        fields).
    """
    if multi_spike is None:
        multi_spike = PRESETS[model.preset].multi_spike
    net = model.network
    arr = np.asarray(spikes)
    # Always a batch, so that every figure has its samples.
    batch = arr if arr.ndim == 3 else arr[np.newaxis]
    fixed = run_network(net, batch, trace=True)
    flt_s, flt_v = simulate_float(model, batch, multi_spike)
    pops, warnings = [], []
    for pop in model.populations:
        if pop.kind == "Input":
            continue
        entry = _parameters(model, pop)
        x_v = fixed.v[pop.name] * pop.scale
        f_v = flt_v[pop.name]
        if pop.kind in READOUTS:
            with np.errstate(over="ignore", invalid="ignore"):
                entry["readout"] = {
                    "max_abs_error": float(np.abs(x_v - f_v).max()),
                    "float_range": float(np.ptp(f_v)),
                }
            quiet = np.ones(f_v.shape, bool)
        else:
            f_s, x_s = flt_s[pop.name], fixed.spikes[pop.name]
            entry["spikes"] = {"float": int(f_s.sum()), "fixed": int(x_s.sum())}
            entry["agreement"] = _spike_agreement(f_s, x_s)
            # A spiking step's trace is v_peak: the membranes compare where neither fires.
            quiet = (f_s == 0) & (x_s == 0)
            warnings += _silence_warning(pop, entry["spikes"])
        entry.setdefault("agreement", {})["v_rms_error"] = _figure(_rms(x_v, f_v, quiet), "max")
        warnings += _saturation_warning(net, pop, fixed, quiet)
        pops.append(entry)
    warnings += _zeroed_warnings(model)
    return {
        "network_hash": net.network_hash(),
        "preset": model.preset,
        "multi_spike": bool(multi_spike),
        "dt": model.dt,
        "v_width": net.v_width,
        "w_width": net.w_width,
        "acc_width": net.acc_width,
        "input": source,
        "steps": int(arr.shape[-2]),
        "runs": int(arr.shape[0]) if arr.ndim == 3 else 1,
        "populations": pops,
        "warnings": warnings,
    }


def _decay_entry(prefix, decays, ratio, size):
    """The report's figures of a decay (``prefix`` ``""`` or ``"syn_"``): ``dt/tau``, its
    shift terms, their value and error, for the neuron with the largest error; with
    ``<prefix>decay_per_neuron`` where the neurons' decays differ."""
    ratios = np.broadcast_to(np.asarray(ratio, np.float64), (size,))
    values = np.array([decay_value(d) for d in decays])
    j = int(np.argmax(np.abs(values - ratios)))
    r, d = float(ratios[j]), float(values[j])
    entry = {} if len(set(decays)) == 1 else {f"{prefix}decay_per_neuron": True}
    return {
        **entry,
        f"{prefix}dt_over_tau": r,
        f"{prefix}decay": list(decays[j]),
        f"{prefix}decay_value": d,
        f"{prefix}decay_error": d - r,
        f"{prefix}decay_relative_error": (d - r) / r if r else 0.0,
    }


def _values(pop, key):
    """Integer parameter ``key`` of network population ``pop``: one value, or the list of
    per-neuron values."""
    column = pop.column(key)
    return int(column[0]) if (column == column[0]).all() else column.tolist()


def _parameters(model, pop):
    """The report entry of ``pop`` before the runs: its mapping and its weights.

    With per-neuron time constants (learned ``beta``) the decay figures are those of the
    neuron whose shift terms are furthest from its ``dt/tau``.
    """
    net = model.network
    net_pop = net.population(pop.name)
    entry = {
        "name": pop.name,
        "node": pop.node,
        "kind": pop.kind,
        "size": pop.size,
        "scale": pop.scale,
        **_decay_entry("", net_pop.decays(), pop.ratio, pop.size),
        **{key: _values(net_pop, key) for key in ("v_th", "v_rest", "v_reset")},
        "reset_timing": pop.reset_timing,
        "threshold_compare": pop.threshold_compare,
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
        entry.update(_decay_entry("syn_", net_pop.decays("syn_decay"), pop.syn_ratio, pop.size))
    return entry


def _spike_agreement(f_s, x_s):
    """Per sample (batch entry) of spike counts ``(B, T, n)``: Jaccard of the spiking entries
    (None where neither run fires), the fraction of equal counts, and the mean over neurons of
    the rate difference in spikes per step."""
    n_batch, n_steps = f_s.shape[:2]
    f, x = f_s.reshape(n_batch, -1), x_s.reshape(n_batch, -1)
    both = ((f > 0) & (x > 0)).sum(axis=1)
    either = ((f > 0) | (x > 0)).sum(axis=1)
    jaccard = [int(b) / int(e) if e else None for b, e in zip(both, either)]
    rates = np.abs(f_s.sum(axis=1, dtype=np.int64) - x_s.sum(axis=1, dtype=np.int64)) / n_steps
    return {
        "jaccard": _figure(jaccard, "min"),
        "equal": _figure((f == x).mean(axis=1).tolist(), "min"),
        "rate_error": _figure(rates.mean(axis=1).tolist(), "max"),
    }


def _rms(a, b, mask):
    """Per sample, the RMS of ``a - b`` over the entries of ``mask`` (None where none)."""
    out = []
    for a_k, b_k, m_k in zip(a, b, mask):
        with np.errstate(over="ignore", invalid="ignore"):
            out.append(float(np.sqrt(np.mean((a_k[m_k] - b_k[m_k]) ** 2))) if m_k.any() else None)
    return out


def _figure(samples, worst):
    """``{"samples": [...], "mean": ..., worst: ...}`` over the samples that are not None (the
    summaries None when none is)."""
    known = [s for s in samples if s is not None]
    pick = min if worst == "min" else max
    return {
        "samples": samples,
        "mean": float(np.mean(known)) if known else None,
        worst: pick(known) if known else None,
    }


def _silence_warning(pop, totals):
    """The warning of a spiking layer that never fires in one of the runs, or in both."""
    if totals["float"] and totals["fixed"]:
        return []
    if not totals["float"] and not totals["fixed"]:
        return [f"{pop.name}: silent in both runs, so its agreement says nothing"]
    if not totals["fixed"]:
        return [f"{pop.name}: silent in the fixed-point network ({totals['float']} float spikes)"]
    return [f"{pop.name}: silent in the float model ({totals['fixed']} fixed-point spikes)"]


def _saturation_warning(net, pop, fixed, quiet):
    """The warning of a population whose fixed-point membrane reaches an end of its range on a
    ``quiet`` (non-spiking) entry."""
    lo, hi = v_range(net.v_width)
    v = fixed.v[pop.name]
    hits = int((((v == lo) | (v == hi)) & quiet).sum())
    if not hits:
        return []
    return [
        f"{pop.name}: the membrane saturates (at {lo} or {hi}) in {hits} of "
        f"{int(quiet.sum())} neuron-steps: raise --v-width"
    ]


def _zeroed_warnings(model):
    """The warning of each projection whose nonzero float weights all rounded to 0."""
    out = []
    for flt, proj in zip(model.projections, model.network.projections):
        nonzero = int(np.count_nonzero(flt.weights))
        if nonzero and not np.count_nonzero(proj.weights):
            out.append(
                f"{flt.source} -> {flt.target}: all {nonzero} nonzero weights round to 0 at "
                f"w_width={model.network.w_width}"
            )
    return out


def hidden_agreement(model, report):
    """The lowest mean Jaccard of the hidden layers in ``report`` (a report of ``model``).

    Hidden layers are the spiking populations that project to another population; without any,
    every spiking population counts. A layer that fires in neither run says nothing and is left
    out; None if every one is.
    """
    net = model.network
    feeds = {p.source for p in net.projections if p.source != p.target}
    spiking = [p for p in report["populations"] if "spikes" in p]
    hidden = [p for p in spiking if p["name"] in feeds] or spiking
    known = [p["agreement"]["jaccard"]["mean"] for p in hidden]
    known = [j for j in known if j is not None]
    return min(known) if known else None


def smallest_widths(load, spikes, target, v_width, w_width, multi_spike=None):
    """The narrowest widths whose network reaches ``target`` on ``spikes`` (``--w-width auto``).

    A given width is kept. An ``"auto"`` one is searched from the narrowest up: first
    ``w_width`` with the widest membrane (or the given ``v_width``), where the membrane adds
    almost no error, then ``v_width`` with the ``w_width`` found. A width the graph cannot be
    imported at (a value outside the range) does not reach the target.

    Parameters
    ----------
    load : callable
        ``load(v_width, w_width)``: the :class:`~spikeforge.gen.nir_model.FloatModel` of the
        graph at these widths.
    spikes : array of 0/1, shape (T, n_in) or (B, T, n_in)
    target : float
        The :func:`hidden_agreement` to reach.
    v_width, w_width : int or "auto"
    multi_spike : bool, optional
        As in :func:`quantization_report`.

    Returns
    -------
    v_width, w_width, agreement, tried
        The widths, their :func:`hidden_agreement` and the number of imports tried.

    Raises
    ------
    SpikeforgeError
        When no hidden layer fires in either run, or the widest widths fall short of ``target``.
    """
    tried = []

    def agreement(v, w):
        try:
            model = load(v, w)
        except SpikeforgeError:
            tried.append(None)
            return None
        found = hidden_agreement(model, quantization_report(model, spikes, "", multi_spike))
        tried.append(found)
        return found

    def scan(name, bounds, width_at):
        results = []
        for width in range(bounds[0], bounds[1] + 1):
            found = agreement(*width_at(width))
            if found is not None and found >= target:
                return width, found
            results.append(found)
        known = [r for r in results if r is not None]
        if not known:
            raise SpikeforgeError(
                f"at no {name} in [{bounds[0]}, {bounds[1]}] does a hidden layer fire on this "
                f"input in either run: the widths cannot be chosen by agreement"
            )
        raise SpikeforgeError(
            f"no {name} in [{bounds[0]}, {bounds[1]}] reaches a hidden-layer Jaccard of "
            f"{target:g} (at best {max(known):.3f}): lower --target or give the widths"
        )

    v_fixed = V_WIDTH_RANGE[1] if v_width == AUTO else v_width
    found = None
    if w_width == AUTO:
        w_width, found = scan("--w-width", W_WIDTH_RANGE, lambda w: (v_fixed, w))
    if v_width == AUTO:
        v_width, found = scan("--v-width", V_WIDTH_RANGE, lambda v: (v, w_width))
    return v_width, w_width, found, len(tried)


def format_report(report):
    """The report as text: a header line, one line per population, then the warnings."""
    multi = ", several spikes per step" if report["multi_spike"] else ""
    lines = [
        f"quantization against the {report['preset']} float semantics{multi}: "
        f"dt={report['dt']:g} s, v_width={report['v_width']}, "
        f"w_width={report['w_width']}, acc_width={report['acc_width']}, "
        f"{report['steps']} steps x {report['runs']} runs of {report['input']} "
        f"(figures: mean over the runs, worst run in brackets)"
    ]
    lines += [f"  {_population_line(p)}" for p in report["populations"]]
    lines += [f"warning: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def _population_line(p):
    w = p["weights"]
    text = (
        f"{p['name']} ({p['kind']}, {p['size']}): scale {p['scale']:.4g}/LSB, "
        f"dt/tau{' (worst neuron)' if 'decay_per_neuron' in p else ''} "
        f"{p['dt_over_tau']:.4g} ~ {p['decay']} = {p['decay_value']:.4g} "
        f"(error {p['decay_error']:+.2g}), "
    )
    if "syn_decay" in p:
        text += (
            f"dt/tau_syn{' (worst neuron)' if 'syn_decay_per_neuron' in p else ''} "
            f"{p['syn_dt_over_tau']:.4g} ~ {p['syn_decay']} = "
            f"{p['syn_decay_value']:.4g} (error {p['syn_decay_error']:+.2g}), "
        )
    text += (
        f"weights {w['float_min']:.3g}...{w['float_max']:.3g} -> "
        f"{w['int_min']}...{w['int_max']}, {w['clipped']} clipped, {w['zeroed']} zeroed, "
    )
    a = p["agreement"]
    if "spikes" in p:
        s = p["spikes"]
        text += (
            f"spikes float {s['float']} / fixed {s['fixed']}, "
            f"Jaccard {_number(a['jaccard'], 'min', '.3f')}, "
            f"equal {_number(a['equal'], 'min', '.2%')}, "
            f"rate error {_number(a['rate_error'], 'max', '.3g')}/step, "
        )
    else:
        r = p["readout"]
        text += (
            f"readout max error {r['max_abs_error']:.3g} over a range of {r['float_range']:.3g}, "
        )
    return text + f"v RMS error {_number(a['v_rms_error'], 'max', '.3g')}"


def _number(figure, worst, spec):
    """``mean [worst]`` of a :func:`_figure`, or ``-`` where no sample has one."""
    if figure["mean"] is None:
        return "-"
    mean, bad = figure["mean"], figure[worst]
    if not (math.isfinite(mean) and math.isfinite(bad)):
        return f"{mean} [{bad}]"
    return f"{mean:{spec}} [{bad:{spec}}]"


def write_report(report, path):
    """Write the report as JSON (sorted keys, so the file is deterministic)."""
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")
