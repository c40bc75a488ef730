"""Float NIR parameters to spikeforge integers (``docs/nir.md``, "The mapping").

:class:`Quantizer` turns ``dt/tau`` into at most four signed power-of-two shift terms, chooses one
scale ``q`` (NIR units per membrane LSB) per population and rounds every voltage, bias and weight
of a :class:`~spikeforge.gen.nir_model.FloatPopulation` to an integer at that scale. A node with
``spikeforge_scale`` metadata (spikeforge's own exports) forces the scale: then anything that is
not a whole number in range is refused instead of rounded.
"""

import json
import math

import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.limits import v_range, w_range
from ..spec.params import NeuronParams, decay_from_ratio, decay_value
from .nir_graph import READOUTS, meta_float, meta_int, node_label

__all__ = ["Quantizer"]


def _decay_list(decay):
    """The JSON value of a decay (a tuple of shift terms) or of per-neuron decays (a tuple of
    such tuples)."""
    if decay and isinstance(decay[0], tuple):
        return [list(d) for d in decay]
    return list(decay)


# Where the (scaled) dt/tau of a forced-scale graph may differ from its stored decay terms:
# export writes tau = 1/d and import computes dt/tau, which is d up to a few ulps.
_RATIO_TOLERANCE = 1e-12


class Quantizer:
    """The integer widths of the network and how to choose the scale.

    Parameters
    ----------
    v_width, w_width : int
        Checked widths of the membrane and of the weights.
    weight_percentile : float
        The scale maps this percentile of the absolute nonzero effective weights to the largest
        weight, in ``(0, 100]``.
    """

    def __init__(self, v_width, w_width, weight_percentile):
        self.v_width = v_width
        self.w_width = w_width
        self.weight_percentile = weight_percentile

    # -- time constants --------------------------------------------------------------------------

    def decay(self, where, meta, key, tau_key, ratio):
        """The shift terms of ``ratio`` (``dt/tau_key``): the node's metadata ``key`` if given
        (checked against ``ratio``), else the best approximation. For a per-neuron ``ratio``
        (an array), a tuple of the terms of every neuron, or one tuple where all are alike; its
        metadata may then give one list of terms per neuron (spikeforge's export does)."""
        if not np.ndim(ratio):
            return self._decay(where, self._meta_decay(where, meta, key), key, tau_key, ratio)
        given = self._meta_decays(where, meta, key, len(ratio))
        decays = tuple(
            self._decay(f"{where} (neuron {j})", given[j], key, tau_key, float(r))
            for j, r in enumerate(np.asarray(ratio))
        )
        return decays if len(set(decays)) > 1 else decays[0]

    def _decay(self, where, decay, key, tau_key, ratio):
        """The shift terms of one ``ratio``: ``decay`` (from the metadata ``key``, checked) or,
        if None, the best approximation."""
        if decay is None:
            if not 0 <= ratio <= 1:
                settles = "zero current" if tau_key == "tau_syn" else "rest potential"
                raise SpikeforgeError(
                    f"{where}: dt/{tau_key} = {ratio:g} must be in [0, 1] "
                    f"(forward Euler with a larger step overshoots the "
                    f"{settles})"
                )
            return decay_from_ratio(ratio, self.v_width)
        if abs(decay_value(decay) - ratio) > _RATIO_TOLERANCE * max(1.0, abs(ratio)):
            raise SpikeforgeError(
                f"{where}: metadata {key} {list(decay)} is "
                f"{decay_value(decay):g}, but dt/{tau_key} = {ratio:g}"
            )
        return decay

    def _meta_decays(self, where, meta, key, size):
        """The metadata ``key`` of a node with per-neuron time constants: ``size`` decays (one
        list of terms per neuron, or one list for all), or ``size`` Nones without it."""
        text = meta.get(key)
        if text is None:
            return [None] * size
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            if len(value) != size:
                raise SpikeforgeError(
                    f"{where}: metadata {key} has {len(value)} lists of shift terms, "
                    f"the node has {size} neurons"
                )
            return [
                self._meta_decay(f"{where} (neuron {j})", {key: json.dumps(v)}, key)
                for j, v in enumerate(value)
            ]
        return [self._meta_decay(where, meta, key)] * size

    def _meta_decay(self, where, meta, key):
        """The shift terms stored in the node's metadata ``key`` (a JSON list), or None."""
        text = meta.get(key)
        if text is None:
            return None
        try:
            terms = json.loads(text) if isinstance(text, str) else None
            return NeuronParams(v_th=0, decay=terms, v_width=self.v_width).decay
        except (ValueError, TypeError):
            raise SpikeforgeError(
                f"{where}: metadata {key} must be a JSON list of at "
                f"most 4 shift terms in [{1 - self.v_width}, {self.v_width - 1}], "
                f"not {text!r}"
            ) from None

    # -- one population --------------------------------------------------------------------------

    def population(self, pop, meta, projections):
        """The network-file description of neuron population ``pop`` (its ``scale``,
        ``clipped`` and ``zeroed`` are set on the way).

        Parameters
        ----------
        pop : FloatPopulation
            With its ``bias`` filled in.
        meta : dict
            The metadata of its node.
        projections : list of FloatProjection
            Every projection into ``pop``.
        """
        where = node_label(pop.node, pop.kind)
        forced = self._forced_scale(where, meta)
        pop.scale = self._scale(pop, projections) if forced is None else forced
        v_lo, v_hi = v_range(self.v_width)
        v_rest = self._integers(where, "v_leak", pop.v_leak, pop.scale, forced)
        if pop.kind in READOUTS:
            v_th = v_peak = v_hi
            v_reset = 0
        else:
            v_th = self._integers(where, "v_threshold", pop.v_threshold, pop.scale, forced)
            v_reset = self._integers(where, "v_reset", pop.v_reset, pop.scale, forced)
            peak = meta_float(where, meta, "spikeforge_v_peak")
            v_peak = (
                v_hi
                if peak is None
                else self._integer(where, "spikeforge_v_peak", peak, pop.scale, forced)
            )
        bias = self._round(pop, pop.bias, v_lo, v_hi, forced, where, "bias")
        per_neuron = meta_int(where, meta, "spikeforge_bias_per_neuron", 0, 1, None)
        if per_neuron is None:
            per_neuron = int(not (bias == bias[0]).all())
        elif not per_neuron and not (bias == bias[0]).all():
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_bias_per_neuron is 0 but the "
                f"bias differs between neurons"
            )
        spec = {
            "name": pop.name,
            "kind": "lif",
            "size": pop.size,
            "v_th": v_th,
            "v_reset": v_reset,
            "v_rest": v_rest,
            "v_peak": v_peak,
            "t_ref": pop.t_ref,
            "decay": _decay_list(pop.decay),
            "reset_mode": pop.reset_mode,
            "bias": bias if per_neuron else int(bias[0]),
        }
        if pop.syn_decay is not None:
            spec["syn_decay"] = _decay_list(pop.syn_decay)
        # Written only when not the default, as the network file does.
        if pop.reset_timing != "same":
            spec["reset_timing"] = pop.reset_timing
        if pop.threshold_compare != ">":
            spec["threshold_compare"] = pop.threshold_compare
        self._check_params(where, pop, spec)
        return spec

    def _check_params(self, where, pop, spec):
        """The combination of values is one spikeforge accepts (e.g. ``v_reset <= v_th``),
        for every neuron where some are per neuron."""
        keys = ("v_th", "v_reset", "v_rest", "decay", "syn_decay")
        spec = {**spec, "syn_decay": spec.get("syn_decay")}
        varying = [key for key in keys[:3] if isinstance(spec[key], list)]
        varying += [key for key in keys[3:] if spec[key] and isinstance(spec[key][0], list)]
        for j in range(pop.size if varying else 1):
            values = {key: spec[key][j] if key in varying else spec[key] for key in keys}
            try:
                NeuronParams(
                    **values,
                    v_peak=spec["v_peak"],
                    t_ref=pop.t_ref,
                    reset_mode=pop.reset_mode,
                    v_width=self.v_width,
                    reset_timing=pop.reset_timing,
                    threshold_compare=pop.threshold_compare,
                )
            except (TypeError, ValueError) as error:
                neuron = f" (neuron {j})" if varying else ""
                raise SpikeforgeError(f"{where}{neuron}: {error}") from None

    def weights(self, target, meta, proj):
        """The integer weights of ``proj`` at the scale of its ``target`` population (after
        :meth:`population` of it), counted in its ``clipped`` and ``zeroed``."""
        where = node_label(target.node, target.kind)
        forced = meta_float(where, meta, "spikeforge_scale")
        lo, hi = w_range(self.w_width)
        return self._round(
            target, proj.weights, lo, hi, forced, where, f"weights from {proj.source!r}"
        )

    # -- the scale and rounding ------------------------------------------------------------------

    @staticmethod
    def _forced_scale(where, meta):
        """The node's ``spikeforge_scale`` metadata, or None."""
        forced = meta_float(where, meta, "spikeforge_scale")
        if forced is not None and forced <= 0:
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_scale must be positive, not {forced:g}"
            )
        return forced

    def _scale(self, pop, projections):
        """``q``: the parameters within half the membrane range, the chosen percentile of the
        weights at the largest weight."""
        v_hi = v_range(self.v_width)[1]
        w_hi = w_range(self.w_width)[1]
        volts = [float(np.abs(pop.v_leak).max()), float(np.abs(pop.bias).max())]
        if pop.kind not in READOUTS:
            volts += [float(np.abs(pop.v_threshold).max()), float(np.abs(pop.v_reset).max())]
        weights = np.concatenate([np.abs(p.weights).ravel() for p in projections] or [np.zeros(0)])
        weights = weights[weights > 0]
        w_max = float(np.percentile(weights, self.weight_percentile)) if weights.size else 0
        # Half the membrane range for the parameters leaves room for the excursions above
        # threshold and below rest; the weights get the whole w_width range.
        q = max(max(volts) / max(1, v_hi // 2), w_max / w_hi)
        # Nothing but zeros: any scale is exact.
        return q if q != 0 else 1.0

    def _integers(self, where, key, value, q, forced):
        """:meth:`_integer` of one value, or of each of a per-neuron array: a list of
        integers then, one integer where they all round alike."""
        if np.ndim(value) == 0:
            return self._integer(where, key, value, q, forced)
        out = [self._integer(where, f"{key}[{j}]", x, q, forced) for j, x in enumerate(value)]
        return out if len(set(out)) > 1 else out[0]

    def _integer(self, where, key, value, q, forced):
        """The voltage ``value`` as an integer at scale ``q``, within the membrane range."""
        v_lo, v_hi = v_range(self.v_width)
        x = float(value) / q
        n = round(x) if math.isfinite(x) else x
        if forced is not None and n != x:
            raise SpikeforgeError(
                f"{where}: {key} = {value:g} is not a whole number of spikeforge_scale = {q:g}"
            )
        if not math.isfinite(x) or not v_lo <= n <= v_hi:
            raise SpikeforgeError(
                f"{where}: {key} = {value:g} is {x:g} at scale {q:g}, "
                f"outside the v_width={self.v_width} range [{v_lo}, {v_hi}]"
            )
        return int(n)

    @staticmethod
    def _round(pop, values, lo, hi, forced, where, what):
        """``values / pop.scale`` rounded and clipped to ``[lo, hi]`` (refused if ``forced``)."""
        x = values / pop.scale
        n = np.round(x)
        if forced is not None and (n != x).any():
            raise SpikeforgeError(
                f"{where}: {what} are not whole numbers of spikeforge_scale = {pop.scale:g}"
            )
        clipped = np.clip(n, lo, hi)
        if forced is not None and (clipped != n).any():
            raise SpikeforgeError(
                f"{where}: {what} reach {float(np.abs(n).max()):g}, outside [{lo}, {hi}]"
            )
        pop.clipped += int((clipped != n).sum())
        pop.zeroed += int(((n == 0) & (values != 0)).sum())
        return clipped.astype(np.int64)
