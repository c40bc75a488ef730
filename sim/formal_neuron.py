"""Formal harnesses of :class:`~spikeforge.hdl.neuron.NeuronCore`, for :func:`.formal.prove`.

Each harness is a port-less component holding the core(s) under test, free parameters
(``AnyConst``, assumed valid) and free inputs (``AnySeq``), a reference of ``docs/neuron.md``
computed in wide arithmetic, and the ``Assert``\\ s of the properties selected by ``check``:

``"membrane"``
    A non-refractory step stores and traces exactly the spec's value: ``v' = sat(v - leak + I)``
    with ``v - leak + I`` exact, then reset (zero or saturated subtract) on a spike. So the
    membrane never wraps and saturates exactly at the ends of its range. On a synaptic core
    (``synaptic=True``) also every step, refractory or not, stores the spec's current
    ``i' = sat(i - syn_leak(i) + I)`` (0 for a plain population), and ``I`` above is ``i'``.
    On a ``delayed_reset`` core, a population with ``reset_timing = "next"`` applies the reset
    due from its previous step first (``u = v_reset``, or ``v' = sat(v - leak(v) + I - v_th)``),
    keeps ``v'`` on a spike, and ``pending_next`` is its spike.
``"spike"``
    A spike exactly when not refractory and ``v' > v_th`` (or ``v' >= v_th`` for a population
    of ``threshold_compare = ">="`` on an ``at_threshold`` core); never while refractory.
``"refractory"``
    ``r_next <= t_ref``; while refractory it counts down by exactly one; otherwise it loads
    ``t_ref`` on a spike and 0 without.
``"hold"``
    While refractory the membrane is unchanged and the trace shows it (on a ``delayed_reset``
    core: unchanged but for the reset due, ``v_reset`` or ``sat(v - v_th)``).
``"valid"``
    ``out_valid`` is ``in_valid`` delayed by the core's ``latency``.

The reference sees the core's inputs delayed by ``latency`` cycles, so the same harness checks
every stage count. :class:`PipelineEquivalence` checks a pipelined core against the one-stage
core instead.
"""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from spikeforge.hdl.neuron import NeuronCore
from spikeforge.spec.limits import MAX_DECAY_TERMS

from .formal import check_properties, no_reset

__all__ = ["PROPERTIES", "NeuronHarness", "PipelineEquivalence"]

PROPERTIES = ("membrane", "spike", "refractory", "hold", "valid")


def assume_valid_params(m, core):
    """Assume what :class:`~spikeforge.spec.params.NeuronParams` guarantees of ``core.params``.

    ``v_reset <= v_th <= v_peak``, every enabled decay shift below ``v_width``, no negative
    term with shift 0 (it cannot be written), ``t_ref <= t_ref_max``; the same of the
    ``syn_decay`` terms of a synaptic core. A core built for ``decay_sets`` has a
    ``decay_sel`` naming one of them (the core checked the decays themselves). Every other
    field takes any value of its type.
    """
    p = core.params
    m.d.comb += [
        Assume(p.v_reset <= p.v_th),
        Assume(p.v_th <= p.v_peak),
        Assume(p.t_ref <= core.t_ref_max),
    ]
    if core.decay_sets is None:
        terms = [p.decay[k] for k in range(MAX_DECAY_TERMS)]
    else:
        m.d.comb += Assume(p.decay_sel < len(core.decay_sets))
        terms = []
    if core.synaptic:
        terms += [p.syn_decay[k] for k in range(MAX_DECAY_TERMS)]
    for term in terms:
        m.d.comb += Assume(
            ~term.en | ((term.shift < core.v_width) & ~(term.neg & (term.shift == 0)))
        )


def delayed(m, value, cycles, name):
    """``value`` delayed by ``cycles`` clock cycles through registers (0: ``value`` itself)."""
    for i in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def filled(m, cycles):
    """High from cycle ``cycles`` on, when a delay line of that length holds no init values."""
    count = Signal(range(cycles + 1), name="filled")
    with m.If(count != cycles):
        m.d.sync += count.eq(count + 1)
    return count == cycles


def reference_step(
    m,
    v_width,
    acc_width,
    p,
    v,
    r,
    acc,
    i=None,
    pending=None,
    at_threshold=False,
    decay_sets=None,
):
    """The step of ``docs/neuron.md`` in arithmetic that cannot wrap.

    Written from the spec, not from the core: every intermediate value lives in a signal of
    ``wide`` bits that holds it whole, the leak terms are selected with ``If`` and summed in
    another order, the clamp compares against the range ends, and spike, reset and refractory
    logic are as the spec words them.

    With the synaptic current ``i`` (a synaptic core's parameters), the current step comes
    first and the membrane takes its result when ``p.synaptic`` is set. With ``pending`` (a
    ``delayed_reset`` core's) the reset due from the previous step comes before the leak where
    ``p.delayed`` is set; with ``at_threshold`` the threshold test is ``>=`` where
    ``p.at_threshold`` is set. With ``decay_sets`` (the core's) the leak is the decay that
    ``p.decay_sel`` names, each written out from its shift terms.

    Returns
    -------
    dict
        ``v_prime``, ``fires`` (the threshold test), ``spike``, ``v_next``, ``r_next``,
        ``held`` (the membrane of a refractory step), ``trace`` (and ``i_next`` with ``i``,
        ``pending_next`` with ``pending``) as signals.
    """
    # |v - v_rest| < 2**W, the four terms sum below 2**(W+2), and |I| < 2**max(W, acc)+1: this
    # width holds v - leak + I with room to spare.
    wide = signed(max(v_width, acc_width) + 6)
    v_min, v_max = -(1 << (v_width - 1)), (1 << (v_width - 1)) - 1

    def clamp(x, name):
        out = Signal(signed(v_width), name=name)
        with m.If(x > v_max):
            m.d.comb += out.eq(v_max)
        with m.Elif(x < v_min):
            m.d.comb += out.eq(v_min)
        with m.Else():
            m.d.comb += out.eq(x)
        return out

    def wide_signal(value, name):
        sig = Signal(wide, name=name)
        m.d.comb += sig.eq(value)
        return sig

    def shift_sum(decay, d, name):
        terms = []
        for k in range(MAX_DECAY_TERMS):
            term = decay[k]
            t = Signal(wide, name=f"ref_{name}{k}")
            with m.If(term.en & ~term.neg):
                m.d.comb += t.eq(d >> term.shift)
            with m.Elif(term.en & term.neg):
                m.d.comb += t.eq(-(d >> term.shift))
            terms.append(t)
        # Summed in the opposite order to the core's, so that the check does not lean on
        # matching adder trees.
        return wide_signal(terms[3] + terms[2] + terms[1] + terms[0], f"ref_{name}")

    def fixed_sum(d, name):
        total = Signal(wide, name=f"ref_{name}")
        with m.Switch(p.decay_sel):
            for n, decay in enumerate(decay_sets):
                with m.Case(n):
                    terms = [(d >> k) if k >= 0 else -(d >> -k) for k in reversed(decay)]
                    m.d.comb += total.eq(sum(terms, Const(0)))
        return total

    current = wide_signal(acc + p.bias, "ref_current")
    out = {}
    if i is not None:
        syn_leak = shift_sum(p.syn_decay, wide_signal(i, "ref_i"), "syn_leak")
        i_prime = clamp(wide_signal(i - syn_leak + current, "ref_i_exact"), "ref_i_prime")
        out["i_next"] = Signal(signed(v_width), name="ref_i_next")
        # What the membrane integrates: the new current, or the input of a plain population.
        current = wide_signal(Mux(p.synaptic, i_prime, current), "ref_membrane_input")
        with m.If(p.synaptic):
            m.d.comb += out["i_next"].eq(i_prime)
    # The membrane the step starts from (u) and what the leak and input are added to (base):
    # both v, unless a delayed reset is due.
    u = wide_signal(v, "ref_u")
    base = wide_signal(v, "ref_base")
    if pending is not None:
        with m.If(pending & p.delayed & ~p.subtract):
            m.d.comb += [u.eq(p.v_reset), base.eq(p.v_reset)]
        with m.If(pending & p.delayed & p.subtract):
            m.d.comb += base.eq(v - p.v_th)
    d = wide_signal(u - p.v_rest, "ref_d")
    leak = shift_sum(p.decay, d, "leak") if decay_sets is None else fixed_sum(d, "leak")
    exact = Signal(wide, name="ref_exact")
    m.d.comb += exact.eq(base - leak + current)
    v_prime = clamp(exact, "ref_v_prime")
    held = clamp(base, "ref_held")
    fires = Signal(name="ref_fires")
    if at_threshold:
        m.d.comb += fires.eq(Mux(p.at_threshold, v_prime >= p.v_th, v_prime > p.v_th))
    else:
        m.d.comb += fires.eq(v_prime > p.v_th)

    over = Signal(wide, name="ref_over")
    m.d.comb += over.eq(v_prime - p.v_th)
    subtracted = clamp(over, "ref_subtracted")

    spike = Signal(name="ref_spike")
    v_next = Signal(signed(v_width), name="ref_v_next")
    r_next = Signal(r.shape(), name="ref_r_next")
    with m.If(r > 0):
        m.d.comb += [v_next.eq(held), r_next.eq(r - 1)]
    with m.Elif(fires):
        m.d.comb += [spike.eq(1), r_next.eq(p.t_ref)]
        if pending is not None:
            delayed_reset = p.delayed
        else:
            delayed_reset = 0
        with m.If(delayed_reset):
            m.d.comb += v_next.eq(v_prime)
        with m.Elif(p.subtract):
            m.d.comb += v_next.eq(subtracted)
        with m.Else():
            m.d.comb += v_next.eq(p.v_reset)
    with m.Else():
        m.d.comb += v_next.eq(v_prime)
    trace = Signal(signed(v_width), name="ref_trace")
    m.d.comb += trace.eq(Mux(spike, p.v_peak, v_next))
    out.update(
        v_prime=v_prime,
        fires=fires,
        spike=spike,
        v_next=v_next,
        r_next=r_next,
        held=held,
        trace=trace,
    )
    if pending is not None:
        out["pending_next"] = Signal(name="ref_pending_next")
        m.d.comb += out["pending_next"].eq(spike & p.delayed)
    return out


class NeuronHarness(wiring.Component):
    """A :class:`NeuronCore` against the spec, for every parameter value and input stream.

    Parameters
    ----------
    v_width, acc_width, t_ref_max, stages, decay_sets, synaptic, delayed_reset, at_threshold
        Passed to :class:`NeuronCore`. With ``decay_sets`` (as the array builds its cores) the
        shifters are wiring, which is what keeps a ``delayed_reset`` proof small: free shift
        amounts in front of the pending-reset multiplexer took yices over five minutes at
        ``v_width`` 4.
    check : iterable of str
        Which of :data:`PROPERTIES` to assert.
    closed_loop : bool
        ``False``: ``in_valid``, ``v``, ``r`` and ``acc`` are free every cycle, with ``r <=
        t_ref`` assumed, which is what an array that stores ``r_next`` and starts from ``r = 0``
        feeds the core. ``True``: the core's ``v_next``/``r_next`` are its next ``v``/``r``
        (``in_valid`` high, ``acc`` free), from the all-zero initial state and with no
        assumption on ``r``; with ``latency`` stages this is ``latency`` neurons taking turns,
        each of which is one neuron fed back on itself. This discharges the open-loop
        assumption: ``"refractory"`` then proves ``r <= t_ref`` holds forever.
    """

    def __init__(
        self,
        *,
        v_width=8,
        acc_width=8,
        t_ref_max=7,
        stages=1,
        check=PROPERTIES,
        closed_loop=False,
        decay_sets=None,
        synaptic=False,
        delayed_reset=False,
        at_threshold=False,
    ):
        self.check = check_properties(check, PROPERTIES)
        self.core = NeuronCore(
            v_width=v_width,
            acc_width=acc_width,
            t_ref_max=t_ref_max,
            stages=stages,
            decay_sets=decay_sets,
            synaptic=synaptic,
            delayed_reset=delayed_reset,
            at_threshold=at_threshold,
        )
        self.closed_loop = bool(closed_loop)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        m.submodules.core = core = self.core
        p = core.params

        m.d.comb += p.as_value().eq(AnyConst(len(p.as_value())))
        assume_valid_params(m, core)
        acc = AnySeq(core.acc.shape())
        m.d.comb += core.acc.eq(acc)
        if self.closed_loop:
            m.d.comb += [
                core.in_valid.eq(1),
                core.v.eq(core.v_next),
                core.r.eq(core.r_next),
            ]
            if core.synaptic:
                m.d.comb += core.i.eq(core.i_next)
            if core.delayed_reset:
                m.d.comb += core.pending.eq(core.pending_next)
        else:
            m.d.comb += [
                core.in_valid.eq(AnySeq(1)),
                core.v.eq(AnySeq(core.v.shape())),
                core.r.eq(AnySeq(core.r.shape())),
                Assume(core.r <= p.t_ref),
            ]
            if core.synaptic:
                m.d.comb += core.i.eq(AnySeq(core.i.shape()))
            if core.delayed_reset:
                m.d.comb += core.pending.eq(AnySeq(1))

        # The reference sees the inputs in the same cycle as the core, and its results are
        # delayed to meet the core's outputs. Parameters are constant and need no delay.
        ref = reference_step(
            m,
            core.v_width,
            core.acc_width,
            p,
            core.v,
            core.r,
            core.acc,
            core.i if core.synaptic else None,
            core.pending if core.delayed_reset else None,
            core.at_threshold,
            core.decay_sets,
        )
        lat = core.latency
        ref = {name: delayed(m, value, lat, f"ref_{name}") for name, value in ref.items()}
        v = delayed(m, core.v, lat, "in_v")
        r = delayed(m, core.r, lat, "in_r")
        valid = delayed(m, core.in_valid, lat, "in_valid")
        # Until the delay line has filled, the core's outputs come from its init values.
        ready = filled(m, lat)

        step = ready & valid
        refractory = r != 0
        # A refractory step holds v, but for a delayed reset that is due.
        held = ref["held"] if core.delayed_reset else v
        # Built only when selected: Amaranth warns about a property that is never added.
        asserts = {
            "membrane": lambda: [
                Assert(
                    ~step | refractory | (core.v_next == ref["v_next"]),
                    "membrane: stored v differs from the spec",
                ),
                Assert(
                    ~step | refractory | (core.v_trace == ref["trace"]),
                    "membrane: trace differs from the spec",
                ),
            ],
            "spike": lambda: [
                Assert(
                    ~step | (core.spike == (~refractory & ref["fires"])),
                    "spike: not exactly when v' > v_th",
                ),
                Assert(~step | ~refractory | ~core.spike, "spike: fired while refractory"),
            ],
            "refractory": lambda: [
                Assert(~step | (core.r_next <= p.t_ref), "refractory: r_next > t_ref"),
                Assert(
                    ~step | ~refractory | (core.r_next == r - 1),
                    "refractory: did not count down by one",
                ),
                Assert(
                    ~step | refractory | (core.r_next == Mux(core.spike, p.t_ref, 0)),
                    "refractory: not t_ref after a spike, 0 otherwise",
                ),
            ],
            "hold": lambda: [
                Assert(
                    ~step | ~refractory | ((core.v_next == held) & (core.v_trace == held)),
                    "hold: v changed while refractory",
                ),
            ],
            "valid": lambda: [
                Assert(~ready | (core.out_valid == valid), "valid: out_valid misaligned"),
            ],
        }
        if core.synaptic:
            membrane = asserts["membrane"]
            asserts["membrane"] = lambda: (
                membrane()
                + [
                    Assert(
                        ~step | (core.i_next == ref["i_next"]),
                        "membrane: stored current differs from the spec",
                    )
                ]
            )
        if core.delayed_reset:
            plain_membrane = asserts["membrane"]
            asserts["membrane"] = lambda: (
                plain_membrane()
                + [
                    Assert(
                        ~step | (core.pending_next == ref["pending_next"]),
                        "membrane: pending reset differs from the spec",
                    )
                ]
            )
        for name in self.check:
            m.d.comb += asserts[name]()
        return m


class PipelineEquivalence(wiring.Component):
    """A ``stages``-stage core equals the one-stage core, ``stages - 1`` cycles later.

    Both get the same free input stream and the same free (valid) parameters; every output,
    ``out_valid`` included, is compared once the delay line has filled.

    Parameters
    ----------
    v_width, acc_width, t_ref_max, stages, synaptic, delayed_reset, at_threshold
        Passed to :class:`NeuronCore`; ``stages`` 2 to 4.
    """

    def __init__(
        self,
        *,
        v_width=8,
        acc_width=8,
        t_ref_max=7,
        stages=4,
        synaptic=False,
        delayed_reset=False,
        at_threshold=False,
    ):
        if not isinstance(stages, int) or isinstance(stages, bool) or not 2 <= stages <= 4:
            raise TypeError(f"stages must be an integer in [2, 4], not {stages!r}")
        kwargs = dict(
            v_width=v_width,
            acc_width=acc_width,
            t_ref_max=t_ref_max,
            synaptic=synaptic,
            delayed_reset=delayed_reset,
            at_threshold=at_threshold,
        )
        self.reference = NeuronCore(**kwargs, stages=1)
        self.pipelined = NeuronCore(**kwargs, stages=stages)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        m.submodules.reference = ref = self.reference
        m.submodules.pipelined = dut = self.pipelined

        params = AnyConst(len(ref.params.as_value()))
        m.d.comb += [ref.params.as_value().eq(params), dut.params.as_value().eq(params)]
        assume_valid_params(m, ref)
        synaptic = ref.synaptic
        pending = ("pending",) if ref.delayed_reset else ()
        for port in ("in_valid", "v", "r", "acc") + (("i",) if synaptic else ()) + pending:
            value = AnySeq(getattr(ref, port).shape())
            m.d.comb += [getattr(ref, port).eq(value), getattr(dut, port).eq(value)]
        # No assumption on r: the two must agree on every input, reachable or not.

        extra = dut.latency - ref.latency
        ready = filled(m, dut.latency)
        outputs = ("out_valid", "v_next", "r_next", "spike", "v_trace")
        outputs += ("i_next",) if synaptic else ()
        outputs += ("pending_next",) if pending else ()
        for port in outputs:
            want = delayed(m, getattr(ref, port), extra, f"ref_{port}")
            m.d.comb += Assert(
                ~ready | (getattr(dut, port) == want),
                f"pipeline: {port} differs from the one-stage core",
            )
        return m
