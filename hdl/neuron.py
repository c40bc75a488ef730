"""The pipelined, multiplier-free LIF neuron core of ``docs/neuron.md``, optionally with the
synaptic current of the current-based neuron."""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..spec.limits import (
    ACC_WIDTH_RANGE,
    MAX_DECAY_TERMS,
    STAGES_RANGE,
    T_REF_MAX,
    V_WIDTH_RANGE,
    check_int,
)
from ._validate import validating
from .arith import bits_for, exceeds, fires, reaches, refractory_next, saturate

__all__ = ["params_layout", "pack_params", "decay_term_layout", "pack_terms", "NeuronCore"]

# Which intermediate results get a pipeline register in front of them, per stage count. The
# output is always registered, so the latency equals the stage count. The split points balance
# the carry chains (v - v_rest, v - v_th and the leak terms; their sum beside v + I and
# (v - v_th) + I; (v + I) - leak beside the threshold compare and (v - v_th + I) - leak; then
# multiplexers only) that set the critical path; see docs/neuron.md for the arithmetic itself.
_REGISTERED_AFTER = {
    1: (),
    2: ("leak",),
    3: ("terms", "v_prime"),
    4: ("terms", "leak", "v_prime"),
}


def params_layout(
    v_width,
    t_ref_width,
    decay_sets=None,
    *,
    synaptic=False,
    syn_decay_sets=None,
    delayed_reset=False,
    at_threshold=False,
):
    """Layout of the per-population parameter port of :class:`NeuronCore`.

    Without ``decay_sets``, the decay terms are ``{shift, neg, en}``: an enabled term adds (or
    with ``neg`` subtracts) ``(v - v_rest) >> shift``. With ``decay_sets`` (a core built for a
    fixed list of decays), ``decay_sel`` picks one of them instead. With ``synaptic`` the layout
    also has ``synaptic`` (the population has the current ``i``) and the decay of ``i``: terms
    ``syn_decay``, or with ``syn_decay_sets`` the selection ``syn_decay_sel``. With
    ``delayed_reset`` it has ``delayed``: the population's ``reset_timing`` is ``"next"``; with
    ``at_threshold`` it ends with ``at_threshold``: its ``threshold_compare`` is ``">="``.
    """
    term = decay_term_layout(v_width)
    if decay_sets is not None:
        decay = {"decay_sel": unsigned(bits_for(len(decay_sets) - 1))}
    else:
        decay = {"decay": data.ArrayLayout(term, MAX_DECAY_TERMS)}
    if synaptic:
        decay["synaptic"] = unsigned(1)
        if syn_decay_sets is not None:
            decay["syn_decay_sel"] = unsigned(bits_for(len(syn_decay_sets) - 1))
        else:
            decay["syn_decay"] = data.ArrayLayout(term, MAX_DECAY_TERMS)
    if delayed_reset:
        decay["delayed"] = unsigned(1)
    if at_threshold:
        decay["at_threshold"] = unsigned(1)
    return data.StructLayout(
        {
            "v_th": signed(v_width),
            "v_reset": signed(v_width),
            "v_rest": signed(v_width),
            "v_peak": signed(v_width),
            "bias": signed(v_width),
            "t_ref": unsigned(t_ref_width),
            "subtract": unsigned(1),
            **decay,
        }
    )


def decay_term_layout(v_width):
    """Layout of one runtime decay term: an enabled term adds (with ``neg`` subtracts)
    ``x >> shift``."""
    return data.StructLayout(
        {
            "shift": unsigned(bits_for(v_width - 1)),
            "neg": unsigned(1),
            "en": unsigned(1),
        }
    )


def pack_terms(decay):
    """The :data:`MAX_DECAY_TERMS` runtime terms (:func:`decay_term_layout` values) of a decay
    (a list of shift terms); the unused ones disabled."""
    terms = [{"shift": abs(k), "neg": int(k < 0), "en": 1} for k in decay]
    return terms + [{"shift": 0, "neg": 0, "en": 0}] * (MAX_DECAY_TERMS - len(terms))


def _selection(name, decay, sets):
    if decay not in sets:
        raise ValueError(
            f"{name} {list(decay)} is not one the core was built for: "
            f"{', '.join(str(list(d)) for d in sets)}"
        )
    return sets.index(decay)


def pack_params(
    params,
    decay_sets=None,
    *,
    synaptic=None,
    syn_decay_sets=None,
    delayed_reset=None,
    at_threshold=None,
):
    """Port value (a ``dict`` for :meth:`~amaranth.lib.data.Layout.const`) of a ``NeuronParams``.

    With ``decay_sets``, the decay is given as its index in that list, and must be in it.
    ``synaptic`` says whether the port has the synaptic fields (by default, whether ``params``
    is current-based); a plain LIF population on a synaptic port gets ``synaptic = 0``. With
    ``syn_decay_sets`` a current-based population's ``syn_decay`` is given as its index.
    ``delayed_reset`` likewise says whether the port has ``delayed`` (by default, whether
    ``params.reset_timing`` is ``"next"``), and ``at_threshold`` whether it has
    ``at_threshold`` (by default, whether ``params.threshold_compare`` is ``">="``).
    """
    if synaptic is None:
        synaptic = params.synaptic
    if delayed_reset is None:
        delayed_reset = params.delayed_reset
    if at_threshold is None:
        at_threshold = params.fires_at_threshold
    if params.synaptic and not synaptic:
        raise ValueError("params has a syn_decay, which needs a synaptic parameter port")
    if params.delayed_reset and not delayed_reset:
        raise ValueError("params has reset_timing 'next', which needs a delayed_reset port")
    if params.fires_at_threshold and not at_threshold:
        raise ValueError("params has threshold_compare '>=', which needs an at_threshold port")
    packed = {
        "v_th": params.v_th,
        "v_reset": params.v_reset,
        "v_rest": params.v_rest,
        "v_peak": params.v_peak,
        "bias": params.bias,
        "t_ref": params.t_ref,
        "subtract": int(params.reset_mode == "subtract"),
    }
    if decay_sets is not None:
        packed["decay_sel"] = _selection("decay", tuple(params.decay), decay_sets)
    else:
        packed["decay"] = pack_terms(params.decay)
    if synaptic:
        packed["synaptic"] = int(params.synaptic)
        if syn_decay_sets is not None:
            # A plain population's selection is never used: 0.
            packed["syn_decay_sel"] = (
                _selection("syn_decay", params.syn_decay, syn_decay_sets) if params.synaptic else 0
            )
        else:
            packed["syn_decay"] = pack_terms(params.syn_decay or ())
    if delayed_reset:
        packed["delayed"] = int(params.delayed_reset)
    if at_threshold:
        packed["at_threshold"] = int(params.fires_at_threshold)
    return packed


class NeuronCore(wiring.Component):
    """One LIF update per cycle, pipelined, with adders, shifters and comparators only.

    Feed a neuron's state, its accumulated synaptic input and its population's parameters with
    ``in_valid``; ``stages`` cycles later the next state, spike and trace appear with
    ``out_valid``. A new neuron can enter every cycle, so the core is one lane of the
    time-multiplexed array.

    Parameters
    ----------
    v_width : int
        Membrane width, 2 to 32.
    acc_width : int
        Width of the accumulated synaptic input ``acc`` (signed), 2 to 48.
    t_ref_max : int
        Largest refractory period the counter must hold, 0 to 65535.
    stages : int
        Pipeline depth and latency in cycles, 1 to 4.
    decay_sets : list of tuple of int, optional
        Build the core for these decays only (each a ``decay`` of ``docs/neuron.md``): the
        ``params`` port then selects one by ``decay_sel`` instead of carrying shift terms. The
        shifters become wiring, which is what the array does with its populations' decays.
    synaptic : bool
        Add the synaptic current ``i`` of the current-based neuron (ports ``i``, ``i_next`` and
        the synaptic parameter fields). Without it the core has no trace of ``i``.
    syn_decay_sets : list of tuple of int, optional
        Only with ``synaptic``: build the core for these ``syn_decay`` values only, selected by
        ``syn_decay_sel``, as ``decay_sets`` does for the membrane.
    delayed_reset : bool
        Support ``reset_timing = "next"`` (ports ``pending`` and ``pending_next``, parameter
        field ``delayed``): a population with ``delayed`` set keeps ``v'`` after a spike and
        applies the reset at the start of its next step. Without it the core has no trace of
        this.
    at_threshold : bool
        Support ``threshold_compare = ">="`` (parameter field ``at_threshold``): a population
        with it set fires at ``v' >= v_th``, the others at ``v' > v_th``.

    Attributes
    ----------
    in_valid : In(1)
    v : In(signed(v_width))
    r : In(t_ref_width)
    acc : In(signed(acc_width))
    params : In(params_layout(v_width, t_ref_width, decay_sets))
    out_valid : Out(1)
    v_next : Out(signed(v_width))
    r_next : Out(t_ref_width)
    spike : Out(1)
    v_trace : Out(signed(v_width))
        ``v_peak`` on a spiking step, else ``v_next``.
    i : In(signed(v_width))
        Only with ``synaptic``: the synaptic current before the step.
    i_next : Out(signed(v_width))
        Only with ``synaptic``: the current after the step; 0 when ``params.synaptic`` is 0 (a
        plain LIF population on this core), whose membrane then takes ``acc + bias`` directly.
    pending : In(1)
        Only with ``delayed_reset``: the neuron spiked in its previous step (its reset is due).
    pending_next : Out(1)
        Only with ``delayed_reset``: ``spike`` of a population with ``delayed`` set, else 0.
    """

    def __init__(
        self,
        *,
        v_width=16,
        acc_width=16,
        t_ref_max=15,
        stages=4,
        decay_sets=None,
        synaptic=False,
        syn_decay_sets=None,
        delayed_reset=False,
        at_threshold=False,
    ):
        with validating(self):
            check_int("v_width", v_width, *V_WIDTH_RANGE)
            check_int("acc_width", acc_width, *ACC_WIDTH_RANGE)
            check_int("t_ref_max", t_ref_max, 0, T_REF_MAX)
            check_int("stages", stages, *STAGES_RANGE)
            if decay_sets is not None:
                decay_sets = _check_decay_sets(decay_sets, v_width)
            if not isinstance(synaptic, bool):
                raise TypeError(f"synaptic must be a bool, not {synaptic!r}")
            if syn_decay_sets is not None:
                if not synaptic:
                    raise ValueError("syn_decay_sets needs synaptic=True")
                syn_decay_sets = _check_decay_sets(syn_decay_sets, v_width, "syn_decay_sets")
            if not isinstance(delayed_reset, bool):
                raise TypeError(f"delayed_reset must be a bool, not {delayed_reset!r}")
            if not isinstance(at_threshold, bool):
                raise TypeError(f"at_threshold must be a bool, not {at_threshold!r}")
        self.delayed_reset = delayed_reset
        self.at_threshold = at_threshold
        self.decay_sets = decay_sets
        self.synaptic = synaptic
        self.syn_decay_sets = syn_decay_sets
        self.v_width = v_width
        self.acc_width = acc_width
        self.t_ref_max = t_ref_max
        self.t_ref_width = bits_for(t_ref_max)
        self.stages = stages
        self.latency = stages
        members = {
            "in_valid": In(1),
            "v": In(signed(v_width)),
            "r": In(self.t_ref_width),
            "acc": In(signed(acc_width)),
            "params": In(
                params_layout(
                    v_width,
                    self.t_ref_width,
                    decay_sets,
                    synaptic=synaptic,
                    syn_decay_sets=syn_decay_sets,
                    delayed_reset=delayed_reset,
                    at_threshold=at_threshold,
                )
            ),
            "out_valid": Out(1),
            "v_next": Out(signed(v_width)),
            "r_next": Out(self.t_ref_width),
            "spike": Out(1),
            "v_trace": Out(signed(v_width)),
        }
        if synaptic:
            members["i"] = In(signed(v_width))
            members["i_next"] = Out(signed(v_width))
        if delayed_reset:
            members["pending"] = In(1)
            members["pending_next"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        registered = _REGISTERED_AFTER[self.stages]

        def stage(point, ctx):
            # Every value still needed downstream crosses the boundary together, so the
            # pipeline stays aligned whatever the stage count. Unregistered boundaries still
            # name their values: Amaranth does not share common subexpressions, and reusing an
            # expression object would duplicate its adders.
            domain = m.d.sync if point in registered else m.d.comb
            out = {}
            for name, value in ctx.items():
                out[name] = Signal(value.shape(), name=f"{point}_{name}")
                domain += out[name].eq(value)
            return out

        ctx = {
            "valid": self.in_valid,
            "v": self.v,
            "r": self.r,
            "p": self.params,
            "current": self.acc + self.params.bias,
        }
        if self.delayed_reset:
            ctx["pending"] = self.pending

        if self.delayed_reset:
            d = self._pending_reset(ctx)
        else:
            # Leak terms are floor shifts of (v - v_rest): wiring plus, for a runtime shift
            # amount, a multiplexer; never a multiply.
            d = ctx["v"] - ctx["p"].v_rest
            # v - v_th rides beside v through the adders, so that the last stage finds the
            # threshold compare and the subtract-reset already done instead of two carry chains
            # behind v'.
            ctx["v_minus_th"] = ctx["v"] - ctx["p"].v_th
        if self.decay_sets is None:
            for k in range(MAX_DECAY_TERMS):
                term = ctx["p"].decay[k]
                shifted = d >> term.shift
                ctx[f"term{k}"] = Mux(term.en, Mux(term.neg, -shifted, shifted), 0)
        else:
            ctx["d"] = d
        if self.synaptic:
            # The same shift terms on the current, which decays towards 0.
            ctx["i"] = self.i
            if self.syn_decay_sets is None:
                for k in range(MAX_DECAY_TERMS):
                    term = ctx["p"].syn_decay[k]
                    shifted = ctx["i"] >> term.shift
                    ctx[f"syn{k}"] = Mux(term.en, Mux(term.neg, -shifted, shifted), 0)
        ctx = stage("terms", ctx)

        if self.decay_sets is None:
            leak = sum(ctx.pop(f"term{k}") for k in range(MAX_DECAY_TERMS))
        else:
            # The shifts of a built-in decay are constants, so each candidate leak is a small
            # adder tree on wires of d; the population's decay_sel picks one.
            d = ctx.pop("d")
            leaks = [_fixed_leak(d, decay) for decay in self.decay_sets]
            leak = leaks[-1]
            for n in reversed(range(len(leaks) - 1)):
                leak = Mux(ctx["p"].decay_sel == n, leaks[n], leak)
        ctx["leak"] = leak
        if self.synaptic:
            # i' = sat(i - syn_leak(i) + I), beside the membrane leak sum; the membrane then
            # integrates i' in place of the raw input (a plain population passes I through).
            # This puts the current's carry chain in front of v + I in this stage: a synaptic
            # core has a longer path here than a plain one.
            if self.syn_decay_sets is None:
                syn_leak = sum(ctx.pop(f"syn{k}") for k in range(MAX_DECAY_TERMS))
            else:
                syn_leaks = [_fixed_leak(ctx["i"], decay) for decay in self.syn_decay_sets]
                syn_leak = syn_leaks[-1]
                for n in reversed(range(len(syn_leaks) - 1)):
                    syn_leak = Mux(ctx["p"].syn_decay_sel == n, syn_leaks[n], syn_leak)
            i_sum_expr = ctx.pop("i") - syn_leak + ctx["current"]
            i_sum = Signal(i_sum_expr.shape())
            m.d.comb += i_sum.eq(i_sum_expr)
            ctx["i_prime"] = Mux(ctx["p"].synaptic, saturate(i_sum, self.v_width), 0)
            ctx["current"] = Mux(ctx["p"].synaptic, ctx["i_prime"], ctx["current"])
        # v + I here, so that the next stage has one carry chain left: (v + I) - leak; likewise
        # (v - v_th) + I.
        ctx["v_minus_th_plus_current"] = ctx.pop("v_minus_th") + ctx["current"]
        base = ctx.pop("base") if self.delayed_reset else ctx["v"]
        ctx["v_plus_current"] = base + ctx.pop("current")
        ctx = stage("leak", ctx)

        # Computed at full width (Amaranth widens every sum), then saturated once.
        leak = ctx.pop("leak")
        v_sum_expr = ctx.pop("v_plus_current") - leak
        v_sum = Signal(v_sum_expr.shape())
        m.d.comb += v_sum.eq(v_sum_expr)
        ctx["v_prime"] = saturate(v_sum, self.v_width)
        # Beside v_sum, as parallel carry chains of the same length: v_sum > v_th, and
        # v_sum - v_th, the subtract-reset value of a spike whose v' did not saturate.
        v_minus_th_plus_current = ctx.pop("v_minus_th_plus_current")
        above_expr = v_minus_th_plus_current - leak
        above = Signal(above_expr.shape())
        m.d.comb += above.eq(above_expr)
        if self.at_threshold:
            ctx["above_th"] = self._threshold_test(ctx["p"], v_minus_th_plus_current, leak)
        else:
            ctx["above_th"] = exceeds(v_minus_th_plus_current, leak)
        ctx["above"] = saturate(above, self.v_width)
        # v_sum above the V range: v' is then the largest value, so the spike needs v_th below
        # it, and its subtract-reset value depends on v_th alone. (A positive v_sum fits
        # exactly when its bits from the result's sign bit up are all zero.)
        ctx["over"] = ~v_sum[-1] & v_sum[self.v_width - 1 :].any()
        v_max = (1 << (self.v_width - 1)) - 1
        if self.at_threshold:
            # v_sum below the V range: v' is V_MIN, which fires only at v_th = V_MIN with '>='
            # and then subtracts to exactly 0.
            ctx["under"] = v_sum[-1] & ~v_sum[self.v_width - 1 :].all()
        else:
            ctx["th_below_max"] = ctx["p"].v_th != v_max
        ctx["refractory"] = ctx["r"] != 0
        ctx = stage("v_prime", ctx)

        # Only multiplexers are left for the last stage. v' > v_th exactly when v_sum > v_th
        # and v_th is below the largest v' (v' is v_sum clamped to the V range, and v_th is
        # in it).
        p = ctx["p"]
        v_prime = ctx["v_prime"]
        refractory = ctx["refractory"]
        spike = Signal()
        v_next = Signal(signed(self.v_width))
        if self.at_threshold:
            m.d.comb += spike.eq(fires(ctx["above_th"], refractory))
        else:
            m.d.comb += spike.eq(fires(ctx["above_th"] & ctx["th_below_max"], refractory))
        # sat(v' - v_th): with v' = v_sum it is the registered `above`; with v' = v_max it is
        # sat(v_max - v_th), which is v_max for a negative v_th and else the low bits of v_th
        # inverted (v_max is all ones there): wiring, no adder.
        at_max = Mux(p.v_th[-1], v_max, ~p.v_th[: self.v_width - 1])
        v_subtracted = Mux(ctx["over"], at_max, ctx["above"])
        if self.at_threshold:
            v_subtracted = Mux(ctx["under"], 0, v_subtracted)
        v_after_spike = Mux(p.subtract, v_subtracted, p.v_reset)
        if self.delayed_reset:
            # A delayed reset is applied in the next step: the spiking step keeps v'.
            v_after_spike = Mux(p.delayed, v_prime, v_after_spike)
        m.d.comb += v_next.eq(Mux(refractory, ctx["v"], Mux(spike, v_after_spike, v_prime)))
        m.d.sync += [
            self.out_valid.eq(ctx["valid"]),
            self.v_next.eq(v_next),
            self.r_next.eq(refractory_next(ctx["r"], spike, p.t_ref)),
            self.spike.eq(spike),
            self.v_trace.eq(Mux(spike, p.v_peak, v_next)),
        ]
        if self.synaptic:
            m.d.sync += self.i_next.eq(ctx["i_prime"])
        if self.delayed_reset:
            m.d.sync += self.pending_next.eq(spike & p.delayed)
        return m

    def _threshold_test(self, p, v_minus_th_plus_current, leak):
        """``v' > v_th``, or ``v' >= v_th`` where ``p.at_threshold``, from ``v_sum - v_th`` (as
        ``v_minus_th_plus_current - leak``) beside ``v_sum`` itself.

        ``v'`` is ``v_sum`` clamped to the V range and ``v_th`` is in it, so ``v' > v_th``
        exactly when ``v_sum > v_th`` and ``v_th`` is below ``V_MAX``, and ``v' >= v_th`` exactly
        when ``v_sum >= v_th`` or ``v_th`` is ``V_MIN``. Two comparators in parallel.
        """
        v_min, v_max = -(1 << (self.v_width - 1)), (1 << (self.v_width - 1)) - 1
        above = exceeds(v_minus_th_plus_current, leak) & (p.v_th != v_max)
        at_or_above = reaches(v_minus_th_plus_current, leak) | (p.v_th == v_min)
        return Mux(p.at_threshold, at_or_above, above)

    def _pending_reset(self, ctx):
        """The first stage of a ``delayed_reset`` core: the reset due from the previous step.

        Zero mode starts the step from ``u = v_reset``; subtract mode keeps ``u = v`` and takes
        ``v_th`` off after the leak (``base = u - v_th``). Sets ``base`` (what the membrane
        integrates onto), ``v_minus_th = base - v_th`` and ``v`` (``sat(base)``, the value a
        refractory step holds) in ``ctx`` and returns ``d = u - v_rest``, which the leak
        shifts. One multiplexer in front of the first stage's carry chains.
        """
        p = ctx["p"]
        due = ctx.pop("pending") & p.delayed
        u = Mux(due & ~p.subtract, p.v_reset, ctx["v"])
        take_th = due & p.subtract
        ctx["base"] = u - Mux(take_th, p.v_th, 0)
        # (v_th << 1): v - 2 v_th in one adder, beside base rather than behind it.
        ctx["v_minus_th"] = u - Mux(take_th, p.v_th << 1, p.v_th)
        ctx["v"] = saturate(ctx["base"], self.v_width)
        return u - p.v_rest

    def with_constant_params(self, params):
        """Return this core with its ``params`` port tied to the constants of ``params``.

        Yosys then folds the shifters into wiring; the result is what ``spikeforge generate
        core`` writes for a single population.

        Parameters
        ----------
        params : NeuronParams
            Must have this core's ``v_width`` and a ``t_ref <= t_ref_max``; current-based
            parameters need a ``synaptic`` core.
        """
        if params.v_width != self.v_width:
            raise ValueError(
                f"params.v_width must equal the core's v_width={self.v_width}, not {params.v_width}"
            )
        if params.t_ref > self.t_ref_max:
            raise ValueError(
                f"params.t_ref must be at most the core's t_ref_max="
                f"{self.t_ref_max}, not {params.t_ref}"
            )
        if params.synaptic and not self.synaptic:
            raise ValueError("params has a syn_decay, which needs a core built with synaptic=True")
        if params.delayed_reset and not self.delayed_reset:
            raise ValueError(
                "params has reset_timing 'next', which needs a core built with delayed_reset=True"
            )
        if params.fires_at_threshold and not self.at_threshold:
            raise ValueError(
                "params has threshold_compare '>=', which needs a core built with at_threshold=True"
            )
        return ConstantParamsNeuronCore(
            self,
            pack_params(
                params,
                self.decay_sets,
                synaptic=self.synaptic,
                syn_decay_sets=self.syn_decay_sets,
                delayed_reset=self.delayed_reset,
                at_threshold=self.at_threshold,
            ),
        )


def _check_decay_sets(decay_sets, v_width, name="decay_sets"):
    if isinstance(decay_sets, (str, bytes)) or not hasattr(decay_sets, "__iter__"):
        raise TypeError(f"{name} must be a list of decays, not {decay_sets!r}")
    checked = []
    for decay in decay_sets:
        if not isinstance(decay, (list, tuple)):
            raise TypeError(
                f"{name} must be a list of decays (lists of shift terms), not {decay_sets!r}"
            )
        decay = tuple(decay)
        if len(decay) > MAX_DECAY_TERMS:
            raise ValueError(f"a decay has at most {MAX_DECAY_TERMS} terms, not {list(decay)}")
        for k in decay:
            check_int("decay term", k, -(v_width - 1), v_width - 1)
        checked.append(decay)
    if not checked:
        raise ValueError(f"{name} must hold at least one decay")
    return tuple(checked)


def _fixed_leak(d, decay):
    """``leak`` of ``docs/neuron.md`` for constant shift terms: signed floor shifts of ``d``."""
    leak = Const(0)
    for k in decay:
        shifted = d >> abs(k)
        leak = leak - shifted if k < 0 else leak + shifted
    return leak


class ConstantParamsNeuronCore(wiring.Component):
    """A :class:`NeuronCore` whose parameters are constants: its ports less ``params``."""

    def __init__(self, core, packed):
        self.core = core
        self.latency = core.latency
        self._packed = core.params.shape().const(packed)
        super().__init__(
            {name: member for name, member in core.signature.members.items() if name != "params"}
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.d.comb += core.params.eq(self._packed)
        for name, member in self.signature.members.items():
            if member.flow == wiring.In:
                m.d.comb += getattr(core, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(core, name))
        return m
