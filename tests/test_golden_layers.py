"""The golden model a layer at a time against the golden model step by step (``docs/network.md``).

``run_network`` computes a population on no cycle of projections a chunk of timesteps at once
(``sim/network_golden.py``); ``layers=False`` steps every population in every timestep in list
order, as the spec reads. Both must give the same spikes and membrane traces on any network:
feed-forward ones with dense, pooled and conv projections delivering in the same or the next
step (sources placed after their targets in the list), and ones with cycles, whose populations
on and between cycles are stepped while the others are layers.
"""

import numpy as np
import pytest
from conv_cases import conv_out, lif
from network_cases import option_network, random_spikes

from spikeforge.gen.network import FORMAT, Network
from spikeforge.gen.network_conv import ConvProjection
from spikeforge.sim import network_golden
from spikeforge.sim.network_golden import run_network


def _geometry(rng, shape):
    """Random conv keys for a source of ``shape`` (C, H, W) with an output of at least 1x1."""
    c, h, w = shape
    while True:
        groups = int(rng.choice([1, c]))
        geo = {
            "out_channels": groups * int(rng.integers(1, 3, endpoint=True)),
            "kernel": [int(rng.integers(1, 3, endpoint=True)) for _ in range(2)],
            "stride": [int(rng.integers(1, 2, endpoint=True)) for _ in range(2)],
            "padding": [int(rng.integers(0, 1, endpoint=True)) for _ in range(2)],
            "dilation": [int(rng.integers(1, 2, endpoint=True)) for _ in range(2)],
            "groups": groups,
            "pool": [int(rng.integers(1, 2, endpoint=True)) for _ in range(2)],
        }
        pooled = (h // geo["pool"][0], w // geo["pool"][1])
        out = [
            conv_out(n, geo["kernel"][a], geo["stride"][a], geo["padding"][a], geo["dilation"][a])
            for a, n in enumerate(pooled)
        ]
        if min(pooled) >= 1 and min(out) >= 1:
            return geo, [geo["out_channels"], *out]


def _neurons(rng, name, shape):
    """A LIF population of ``shape``: IF, leaky, refractory, zero reset, current-based, with a
    delayed reset or firing at the threshold, drawn at random."""
    pop = lif(
        name,
        shape,
        v_th=int(rng.integers(20, 80)),
        reset_mode=str(rng.choice(["subtract", "zero"])),
        decay=[int(rng.integers(1, 4))] if rng.random() < 0.5 else [],
        bias=int(rng.integers(-3, 4)) if rng.random() < 0.3 else 0,
    )
    pop["t_ref"] = int(rng.choice([0, 0, 1, 3]))
    if rng.random() < 0.2:
        pop["syn_decay"] = [int(rng.integers(1, 3))]
    if rng.random() < 0.2:
        pop["reset_timing"] = "next"
    if rng.random() < 0.2:
        pop["threshold_compare"] = ">="
    return pop


def _dense(rng, source, target, pool=None):
    """A dense projection dict, from ``source``'s neurons or, with ``pool``, its sum-pooled
    feature map."""
    n = source["size"]
    proj = {"from": source["name"], "to": target["name"]}
    if pool is not None:
        c, h, w = source["shape"]
        n = c * (h // pool[0]) * (w // pool[1])
        proj.update(kind="dense", pool=pool)
    weights = rng.integers(-20, 40, (n, target["size"]))
    proj["weights"] = np.where(rng.random(weights.shape) < 0.5, weights, 0).tolist()
    return proj


def layered_network(rng, cycles):
    """A random network of 2 to 4 LIF populations built source first: each takes a conv or a
    dense (now and then pooled) projection from an earlier one, and dense ones from others; then
    the populations are shuffled in the list, so that some projections deliver in the next step.
    With ``cycles``, projections back to a population or an earlier one close cycles."""
    shape = [int(rng.integers(1, 3, endpoint=True)), *rng.integers(3, 7, 2, endpoint=True)]
    shape = [int(x) for x in shape]
    pops = [{"name": "in0", "kind": "input", "size": int(np.prod(shape)), "shape": shape}]
    if rng.random() < 0.5:
        pops.append({"name": "in1", "kind": "input", "size": int(rng.integers(1, 6))})
    projs = []
    for k in range(int(rng.integers(2, 4, endpoint=True))):
        shaped = [p for p in pops if "shape" in p]
        source = shaped[rng.integers(len(shaped))]
        if rng.random() < 0.6:
            geo, out = _geometry(rng, source["shape"])
            pop = _neurons(rng, f"l{k}", out)
            kernel = rng.integers(
                -20, 40, (out[0], source["shape"][0] // geo["groups"], *geo["kernel"])
            )
            projs.append(
                {
                    "from": source["name"],
                    "to": pop["name"],
                    "kind": "conv2d",
                    **geo,
                    "weights": kernel.tolist(),
                }
            )
        else:
            pop = _neurons(rng, f"l{k}", [int(rng.integers(1, 12))])
            pool = [2, 2] if min(source["shape"][1:]) >= 2 and rng.random() < 0.5 else None
            projs.append(_dense(rng, source, pop, pool))
        for other in pops:
            if other is not source and rng.random() < 0.3:
                projs.append(_dense(rng, other, pop))
        pops.append(pop)
    lifs = [p for p in pops if p["kind"] == "lif"]
    if cycles:
        back = {tuple(sorted(rng.integers(len(lifs), size=2))) for _ in range(2)}
        projs += [_dense(rng, lifs[j], lifs[i]) for i, j in sorted(back)]
    order = rng.permutation(len(pops))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [pops[i] for i in order],
            "projections": projs,
        }
    )


def check_layers_equal_steps(net, spikes):
    """``run_network`` with and without layers: the same spikes and traces."""
    got = run_network(net, spikes, trace=True)
    want = run_network(net, spikes, trace=True, layers=False)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name], err_msg=name)
        np.testing.assert_array_equal(got.v[name], want.v[name], err_msg=name)


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("cycles", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_conv_networks(seed, cycles, batch, monkeypatch):
    """Conv, pooled and dense projections, both timing rules, chunks of 1 to 5 steps summed
    in parts of one or more steps."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(network_golden, "_CHUNK_STEPS", int(rng.integers(1, 5, endpoint=True)))
    monkeypatch.setattr(network_golden, "_CHUNK_ELEMENTS", int(rng.integers(1, 300)))
    net = layered_network(rng, cycles)
    if not cycles:
        assert all(layered for layered, _ in network_golden._stages(net))
    check_layers_equal_steps(net, random_spikes(rng, net, 13, batch=batch, activity=0.3))


@pytest.mark.parametrize("batch", [None, 4])
@pytest.mark.parametrize("seed", range(12))
def test_dense_networks(seed, batch):
    """The random networks of the golden model's other tests: feed-forward and recurrent,
    saturating, refractory, current-based, delayed resets, late inputs."""
    rng = np.random.default_rng(300 + seed)
    net = option_network(rng, max_size=40)
    check_layers_equal_steps(net, random_spikes(rng, net, 21, batch=batch, activity=0.3))


@pytest.mark.parametrize("by_step", [False, True])
@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_event_and_dense_sums(fraction, by_step, monkeypatch):
    """A layer's dense projections by event rows and by the dense product, summed over the
    chunk's steps at once or a step at a time (beside conv sums over parts of the chunk)."""
    monkeypatch.setattr(network_golden, "EVENT_FRACTION", fraction)
    monkeypatch.setattr(network_golden, "_DENSE_MAX", 0)
    monkeypatch.setattr(network_golden, "_LAYER_SUMS_MAX", 0 if by_step else 1 << 30)
    monkeypatch.setattr(network_golden, "_CHUNK_STEPS", 8)
    rng = np.random.default_rng(7)
    for _ in range(4):
        net = layered_network(rng, cycles=False)
        monkeypatch.setattr(network_golden, "_CHUNK_ELEMENTS", int(rng.integers(1, 400)))
        check_layers_equal_steps(net, random_spikes(rng, net, 17, batch=5, activity=0.2))


def test_cases_cover_both_timing_rules():
    """The feed-forward networks of :func:`test_conv_networks` have conv projections, and
    projections that deliver in the same step and in the next."""
    projs = [
        proj
        for seed in range(12)
        for proj in layered_network(np.random.default_rng(seed), False).projections
    ]
    assert {proj.recurrent for proj in projs} == {False, True}
    assert {isinstance(proj, ConvProjection) and proj.recurrent for proj in projs} == {False, True}


def test_stages():
    """Populations on cycles and between two are stepped together in list order; those before
    the cycles are layers first, those after them layers last, sources first."""
    net = Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": 2},
                *(lif(name, [2]) for name in ("after", "cycle1", "between", "cycle2", "before")),
            ],
            "projections": [
                {"from": src, "to": dst, "weights": np.ones((2, 2), int).tolist()}
                for src, dst in [
                    ("inp", "before"),
                    ("before", "cycle1"),
                    ("cycle1", "cycle1"),
                    ("cycle1", "between"),
                    ("between", "cycle2"),
                    ("cycle2", "cycle2"),
                    ("cycle2", "after"),
                ]
            ],
        }
    )
    assert network_golden._stages(net) == [
        (True, ["before"]),
        (False, ["cycle1", "between", "cycle2"]),
        (True, ["after"]),
    ]
