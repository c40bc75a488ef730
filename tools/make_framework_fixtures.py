"""Write the framework fixtures of ``tests/data/frameworks/`` (``docs/nir.md``, "Framework
conventions").

Each fixture is a small network built in a spiking-network framework with fixed seeds, exported
with the framework's own NIR export (``<name>.nir``), and the framework's own forward pass on fixed
random input spikes (``<name>.npz``): ``input`` ``(B, T, n_in)``, ``layers`` (the NIR node names
of the neuron layers, hidden first), ``spikes_<k>`` per layer ``(B, T, n)``, ``versions`` and
``settings`` (JSON: what the NIR file does not carry, e.g. snnTorch's ``reset_delay``, and the
``spikeforge import`` options that follow from it). ``tests/test_framework_fixtures.py`` imports
every fixture with its preset and compares, without torch.

Not part of the test suite and not installed: it needs torch, snnTorch, Norse, nir, nirtorch and
Rockpool in one environment, and Sinabs (which pins an older nir) in another::

    python tools/make_framework_fixtures.py                 # everything but Sinabs, then
    python tools/make_framework_fixtures.py --only sinabs   # in the Sinabs environment
    python tools/make_framework_fixtures.py --example       # also train and run the example

``--example`` needs spikeforge importable there too (``pip install -e .`` in that environment, or
``PYTHONPATH`` pointing at an installed copy).

Time constants are sums of powers of two per step where the framework allows it (snnTorch
``beta`` 0.875 and 0.75, ``alpha`` 0.5; Norse ``dt/tau`` 1/8 and 1/4), so that the fixtures test
the conventions rather than the shift-term approximation of a decay; ``snntorch_leaky_learned``
(``learn_beta``, ``learn_threshold``) has random per-neuron ``beta`` and thresholds instead. Weights are random, then
every layer's weights are scaled (deterministically) until its spike rate lies in [0.1, 0.3], so
that no layer is silent or saturated.
"""

import argparse
import importlib.metadata
import inspect
import json
import os
import runpy
import sys
import tempfile

import nir
import numpy as np
import torch

BATCH, STEPS, N_IN, N_HID, N_OUT = 4, 30, 32, 24, 6
RATE_IN = 0.2
RATE_LO, RATE_HI = 0.1, 0.3
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, os.pardir, "tests", "data", "frameworks")
# Where _save writes: OUT unless --out says otherwise.
_DEST = {"dir": OUT}


def _versions(*packages):
    """JSON of the installed versions of ``packages`` (and torch, nir, nirtorch)."""
    names = ("torch", "nir", "nirtorch") + packages
    return json.dumps({n: importlib.metadata.version(n) for n in names})


def _input(seed):
    """The fixture's input spikes ``(B, T, N_IN)``."""
    rng = np.random.default_rng(seed)
    return (rng.random((BATCH, STEPS, N_IN)) < RATE_IN).astype(np.uint8)


def _linears(net):
    """The ``torch.nn.Linear`` layers of ``net`` in order."""
    return [m for m in net.modules() if isinstance(m, torch.nn.Linear)]


def _calibrate(linears, run, x):
    """Scale each layer's weights until its spike rate is in ``[RATE_LO, RATE_HI]``."""
    for k, lin in enumerate(linears):
        for _ in range(30):
            rate = float((run(x)[k] > 0).mean())
            if RATE_LO <= rate <= RATE_HI:
                break
            with torch.no_grad():
                lin.weight *= 1.25 if rate < RATE_LO else 0.8
                if lin.bias is not None:
                    lin.bias *= 1.25 if rate < RATE_LO else 0.8


def _layer_nodes(graph):
    """The neuron nodes of ``graph`` in the order a walk from its inputs meets them."""
    kinds = ("LIF", "IF", "CubaLIF")
    succ = {}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    seen, order, front = (
        set(),
        [],
        [n for n, v in graph.nodes.items() if type(v).__name__ == "Input"],
    )
    while front:
        nxt = []
        for n in front:
            for m in succ.get(n, []):
                if m not in seen:
                    seen.add(m)
                    nxt.append(m)
                    if type(graph.nodes[m]).__name__ in kinds:
                        order.append(m)
        front = nxt
    return order


def _save(name, graph, x, spikes, versions, settings):
    """Write ``<name>.nir`` and ``<name>.npz``."""
    out = _DEST["dir"]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}.nir")
    if "compression" in inspect.signature(nir.write).parameters:
        # nir 1.0.8 compresses by default, which h5py refuses for Norse's 0-d parameters.
        nir.write(path, graph, compression=None)
    else:
        nir.write(path, graph)
    layers = _layer_nodes(graph)
    if len(layers) != len(spikes):
        raise RuntimeError(f"{name}: NIR neuron nodes {layers} do not match {len(spikes)} layers")
    arrays = {f"spikes_{k}": np.asarray(s, np.uint8) for k, s in enumerate(spikes)}
    if max(int(np.asarray(s).max()) for s in spikes) > 1:
        # Multi-spike frameworks: keep the counts, the test compares "fired at all".
        arrays = {k: np.asarray(s, np.uint16) for k, s in zip(arrays, spikes)}
    np.savez_compressed(
        os.path.join(out, f"{name}.npz"),
        input=x,
        layers=np.array(layers),
        versions=np.array(versions),
        settings=np.array(json.dumps(settings)),
        **arrays,
    )
    rates = ", ".join(f"{(np.asarray(s) > 0).mean():.2f}" for s in spikes)
    print(f"{name}: layers {layers}, spike rates {rates}")


# -- snnTorch -------------------------------------------------------------------------------------


def _snntorch(name, seed, hidden, options, output=None):
    """An snnTorch ``Linear - hidden - Linear - Leaky`` net; ``hidden(n, reset_delay,
    reset_mechanism)`` builds the hidden layer, ``output`` (likewise) the output layer instead of
    a ``Leaky`` with ``beta`` 0.75 and threshold 1."""
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    delay = options.get("reset_delay", True)
    mechanism = options.get("reset_mechanism", "subtract")
    net = torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HID),
        hidden(N_HID, delay, mechanism),
        torch.nn.Linear(N_HID, N_OUT),
        snn.Leaky(
            beta=torch.full((N_OUT,), 0.75),
            threshold=torch.ones(N_OUT),
            init_hidden=True,
            output=True,
            reset_delay=delay,
            reset_mechanism=mechanism,
        )
        if output is None
        else output(N_OUT, delay, mechanism, out=True),
    )

    @torch.no_grad()
    def run(x):
        utils.reset(net)
        # snnTorch 1.0's reset leaves RSynaptic's last spikes (its recurrent input) in place.
        for m in net:
            if hasattr(m, "reset_mem"):
                m.reset_mem()
        xs = torch.as_tensor(x, dtype=torch.float32)
        out = [[], []]
        for t in range(STEPS):
            s1 = net[1](net[0](xs[:, t]))
            s1 = s1[0] if isinstance(s1, tuple) else s1
            s2 = net[3](net[2](s1))[0]
            out[0].append(s1.numpy())
            out[1].append(s2.numpy())
        return [np.stack(o, axis=1) for o in out]

    x = _input(seed)
    _calibrate(_linears(net)[:1] + [net[2]], run, x)
    spikes = run(x)
    graph = export_to_nir(net, torch.zeros(1, N_IN), ignore_dims=[0])
    settings = {
        "preset": "snntorch",
        "reset_delay": delay,
        "reset_mechanism": mechanism,
        "options": {
            "reset_timing": "next" if delay else "same",
            "reset_mode": mechanism,
        },
    }
    _save(name, graph, x, spikes, _versions("snntorch"), settings)


def _snntorch_fixtures():
    import snntorch as snn

    def full(n, value):
        return torch.full((n,), value)

    def leaky(n, delay, mech):
        return snn.Leaky(
            beta=full(n, 0.875),
            threshold=torch.ones(n),
            init_hidden=True,
            reset_delay=delay,
            reset_mechanism=mech,
        )

    def synaptic(n, delay, mech):
        return snn.Synaptic(
            alpha=full(n, 0.5),
            beta=full(n, 0.875),
            threshold=torch.ones(n),
            init_hidden=True,
            reset_delay=delay,
            reset_mechanism=mech,
        )

    def rleaky(n, delay, mech):
        return snn.RLeaky(
            beta=full(n, 0.875),
            threshold=torch.ones(n),
            linear_features=n,
            init_hidden=True,
            reset_delay=delay,
            reset_mechanism=mech,
        )

    def rsynaptic(n, delay, mech):
        return snn.RSynaptic(
            alpha=full(n, 0.5),
            beta=full(n, 0.875),
            threshold=torch.ones(n),
            linear_features=n,
            init_hidden=True,
            reset_delay=delay,
            reset_mechanism=mech,
        )

    _snntorch("snntorch_leaky_delay", 1, leaky, {"reset_delay": True})
    _snntorch("snntorch_leaky_nodelay", 2, leaky, {"reset_delay": False})
    _snntorch(
        "snntorch_synaptic_zero",
        3,
        synaptic,
        {"reset_delay": False, "reset_mechanism": "zero"},
    )
    _snntorch("snntorch_rleaky", 4, rleaky, {"reset_delay": True})
    _snntorch("snntorch_rleaky_nodelay", 5, rleaky, {"reset_delay": False})
    _snntorch("snntorch_rsynaptic", 6, rsynaptic, {"reset_delay": True})

    def learned(n, delay, mech, out=False):
        # Trained with learn_beta and learn_threshold: random per-neuron beta and threshold,
        # which are not sums of a few powers of two (the decays are approximated).
        return snn.Leaky(
            beta=0.5 + 0.45 * torch.rand(n),
            threshold=0.75 + 0.5 * torch.rand(n),
            learn_beta=True,
            learn_threshold=True,
            init_hidden=True,
            output=out,
            reset_delay=delay,
            reset_mechanism=mech,
        )

    _snntorch("snntorch_leaky_learned", 7, learned, {"reset_delay": True}, output=learned)


# -- Norse ----------------------------------------------------------------------------------------


def _norse(name, seed, cell):
    """A Norse ``Linear - cell - Linear - cell`` net in ``SequentialState``."""
    import norse.torch as norse
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(seed)
    net = norse.SequentialState(
        torch.nn.Linear(N_IN, N_HID), cell(), torch.nn.Linear(N_HID, N_OUT), cell()
    )

    @torch.no_grad()
    def run(x):
        xs = torch.as_tensor(x, dtype=torch.float32)
        s1 = s2 = None
        out = [[], []]
        for t in range(STEPS):
            z1, s1 = net[1](net[0](xs[:, t]), s1)
            z2, s2 = net[3](net[2](z1), s2)
            out[0].append(z1.numpy())
            out[1].append(z2.numpy())
        return [np.stack(o, axis=1) for o in out]

    x = _input(seed)
    _calibrate(_linears(net), run, x)
    spikes = run(x)
    graph = to_nir(net, torch.zeros(1, N_IN))
    settings = {"preset": "norse", "dt": 0.001, "options": {}}
    _save(name, graph, x, spikes, _versions("norse"), settings)


def _norse_fixtures():
    import norse.torch as norse

    # tau_mem_inv = 125 and tau_syn_inv = 250 at Norse's dt = 0.001: dt/tau = 1/8 and 1/4.
    box = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(125.0))
    lif = norse.LIFParameters(tau_mem_inv=torch.tensor(125.0), tau_syn_inv=torch.tensor(250.0))
    _norse("norse_lifbox", 11, lambda: norse.LIFBoxCell(box))
    _norse("norse_lif", 12, lambda: norse.LIFCell(lif))
    _norse("norse_iaf", 13, norse.IAFCell)


# -- Rockpool -------------------------------------------------------------------------------------


def _rockpool_fixtures():
    """A Rockpool ``LinearTorch - LIFTorch - LinearTorch - LIFTorch`` net (multi-spike)."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    seed = 21
    torch.manual_seed(seed)
    net = Sequential(
        LinearTorch((N_IN, N_HID)),
        LIFTorch(N_HID, tau_mem=0.02, tau_syn=0.005, dt=1e-3),
        LinearTorch((N_HID, N_OUT)),
        LIFTorch(N_OUT, tau_mem=0.02, tau_syn=0.005, dt=1e-3),
    )
    mods = list(net.modules().values()) if isinstance(net.modules(), dict) else list(net)

    @torch.no_grad()
    def run(x):
        h = torch.as_tensor(x, dtype=torch.float32)
        out = []
        for m in mods:
            m.reset_state()
            h, _, _ = m(h)
            if isinstance(m, LIFTorch):
                out.append(h.numpy().copy())
        return out

    class _Weights:
        """``_calibrate`` scales ``.weight``: LinearTorch's is a Rockpool parameter."""

        def __init__(self, module):
            self.weight = module.weight
            self.bias = None

    x = _input(seed)
    _calibrate([_Weights(m) for m in mods if isinstance(m, LinearTorch)], run, x)
    spikes = run(x)
    graph = to_nir(net, torch.zeros(1, N_IN))
    settings = {"preset": "rockpool", "dt": 1e-3, "options": {}}
    _save("rockpool_lif", graph, x, spikes, _versions("rockpool"), settings)


# -- Sinabs ---------------------------------------------------------------------------------------


def _sinabs(name, seed, spike_fn):
    """A Sinabs ``Linear - IAF - Linear - IAF`` net."""
    import sinabs.layers as sl
    from sinabs.nir import to_nir

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HID),
        sl.IAF(spike_fn=spike_fn),
        torch.nn.Linear(N_HID, N_OUT),
        sl.IAF(spike_fn=spike_fn),
    )

    @torch.no_grad()
    def run(x):
        for m in net:
            if isinstance(m, sl.IAF):
                m.reset_states()
        h = torch.as_tensor(x, dtype=torch.float32)
        out = []
        for m in net:
            h = m(h)
            if isinstance(m, sl.IAF):
                out.append(h.numpy().copy())
        return out

    x = _input(seed)
    _calibrate(_linears(net), run, x)
    out = run(x)
    for m in net:
        if isinstance(m, sl.IAF):
            m.reset_states()
    graph = to_nir(net, torch.zeros(1, 1, N_IN))
    spikes = "single" if spike_fn.__name__ == "SingleSpike" else "multi"
    settings = {"preset": "sinabs", "spike_fn": spike_fn.__name__, "options": {"spikes": spikes}}
    _save(name, graph, x, out, _versions("sinabs"), settings)


def _sinabs_fixtures():
    from sinabs.activation import MultiSpike, SingleSpike

    _sinabs("sinabs_iaf", 31, MultiSpike)
    _sinabs("sinabs_iaf_single", 32, SingleSpike)


FRAMEWORKS = {
    "snntorch": _snntorch_fixtures,
    "norse": _norse_fixtures,
    "rockpool": _rockpool_fixtures,
    "sinabs": _sinabs_fixtures,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(FRAMEWORKS), help="these only")
    parser.add_argument("--out", default=OUT, help="folder to write (default: %(default)s)")
    parser.add_argument(
        "--example", action="store_true", help="also run examples/snntorch_to_spikeforge.py"
    )
    args = parser.parse_args(argv)
    _DEST["dir"] = args.out
    default = [f for f in FRAMEWORKS if f != "sinabs"]
    for framework in args.only or default:
        FRAMEWORKS[framework]()
    if args.example:
        example = os.path.abspath(
            os.path.join(HERE, os.pardir, "examples", "snntorch_to_spikeforge.py")
        )
        # The example writes its .nir and .json to the current folder.
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            runpy.run_path(example, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
