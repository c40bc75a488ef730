"""Random convolutional networks and a reference convolution written from its definition.

Shared by ``tests/test_conv_golden.py`` and ``tests/test_nir_conv.py``.
"""

import numpy as np

from spikeforge.gen.network import FORMAT
from spikeforge.gen.network_conv import ConvProjection


def reference_conv(x, kernel, stride, padding, dilation, groups, pool):
    """``docs/network.md``'s input sum pool and convolution of one input, by the formula.

    Parameters
    ----------
    x : ndarray, shape (C, H, W)
    kernel : ndarray, shape (O, C // groups, kh, kw)
    stride, padding, dilation, pool : pairs of int

    Returns
    -------
    ndarray of int64 (float64 for a float kernel), shape (O, H', W')
    """
    c, h, w = x.shape
    hp, wp = h // pool[0], w // pool[1]
    pooled = (
        x[:, : hp * pool[0], : wp * pool[1]]
        .reshape(c, hp, pool[0], wp, pool[1])
        .sum(axis=(2, 4), dtype=np.int64)
    )
    padded = np.pad(pooled, ((0, 0), (padding[0],) * 2, (padding[1],) * 2))
    o, cg, kh, kw = kernel.shape
    og = o // groups
    ho = (hp + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wp + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((o, ho, wo), np.result_type(kernel.dtype, np.int64))
    for oc in range(o):
        g = oc // og
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dilation[0], kx * dilation[1]
                patch = padded[
                    g * cg : (g + 1) * cg,
                    y0 : y0 + stride[0] * (ho - 1) + 1 : stride[0],
                    x0 : x0 + stride[1] * (wo - 1) + 1 : stride[1],
                ]
                out[oc] += np.tensordot(kernel[oc, :, ky, kx], patch, axes=(0, 0))
    return out


def lif(name, shape, v_th=60, reset_mode="subtract", decay=(), bias=0):
    """A LIF population dict of ``shape``."""
    pop = {"name": name, "kind": "lif", "size": int(np.prod(shape))}
    if len(shape) > 1:
        pop["shape"] = list(shape)
    return {
        **pop,
        "v_th": v_th,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 200,
        "t_ref": 0,
        "decay": list(decay),
        "reset_mode": reset_mode,
        "bias": bias,
    }


def conv_out(n, k, s, p, d):
    """Output extent of one axis."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv_out_shape(in_shape, geo):
    """``(out_channels, H, W)`` of a conv2d of geometry ``geo`` (input sum-pooled first)."""
    _, h, w = in_shape
    hp, wp = h // geo["pool"][0], w // geo["pool"][1]
    return [
        geo["out_channels"],
        conv_out(hp, geo["kernel"][0], geo["stride"][0], geo["padding"][0], geo["dilation"][0]),
        conv_out(wp, geo["kernel"][1], geo["stride"][1], geo["padding"][1], geo["dilation"][1]),
    ]


def draw_geometry(rng, shape):
    """Random valid conv keys for a source of ``shape`` (C, H, W)."""
    c, h, w = shape
    while True:
        divisors = [g for g in range(1, c + 1) if c % g == 0]
        groups = int(rng.choice(divisors))
        geo = {
            "out_channels": groups * int(rng.integers(1, 3)),
            "kernel": [int(rng.integers(1, 4)), int(rng.integers(1, 4))],
            "stride": [int(rng.integers(1, 3)), int(rng.integers(1, 4))],
            "padding": [int(rng.integers(0, 3)), int(rng.integers(0, 2))],
            "dilation": [int(rng.integers(1, 3)), int(rng.integers(1, 3))],
            "groups": groups,
            "pool": [int(rng.integers(1, 3)), int(rng.integers(1, 3))],
        }
        hp, wp = h // geo["pool"][0], w // geo["pool"][1]
        if hp < 1 or wp < 1:
            continue
        ho = conv_out(hp, geo["kernel"][0], geo["stride"][0], geo["padding"][0], geo["dilation"][0])
        wo = conv_out(wp, geo["kernel"][1], geo["stride"][1], geo["padding"][1], geo["dilation"][1])
        if ho >= 1 and wo >= 1:
            return geo


def scaled(proj, scale):
    """``proj`` with its weights times ``scale``."""
    return ConvProjection(
        proj.kind,
        proj.source,
        proj.target,
        proj.weights * scale,
        proj.geometry,
        proj.source_index,
        proj.target_index,
    )


def random_conv_network(rng, draw_geometry, recurrent=True):
    """A network ``in -> c1 (conv) -> c2 (conv with pool) -> out (pooled dense)``, plus a
    recurrent dense projection ``out -> c2`` when ``recurrent``.

    ``draw_geometry(rng, in_shape)`` returns the conv keys
    (``out_channels, kernel, stride, padding, dilation, groups, pool``) of one projection.
    """
    in_shape = [int(rng.integers(1, 4)), int(rng.integers(3, 9)), int(rng.integers(3, 9))]
    pops = [{"name": "inp", "kind": "input", "size": int(np.prod(in_shape)), "shape": in_shape}]
    projs = []
    shape = in_shape
    for name in ("c1", "c2"):
        geo = draw_geometry(rng, shape)
        c = shape[0]
        out = conv_out_shape(shape, geo)
        kernel = rng.integers(-20, 40, (out[0], c // geo["groups"], *geo["kernel"]))
        pops.append(lif(name, out, decay=[int(rng.integers(0, 4))] if rng.random() < 0.5 else []))
        projs.append(
            {
                "from": pops[-2]["name"],
                "to": name,
                "kind": "conv2d",
                **geo,
                "weights": kernel.tolist(),
            }
        )
        shape = out
    c, h, w = shape
    pool = [int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))]
    n_pooled = c * (h // pool[0]) * (w // pool[1])
    pops.append(lif("out", [3], reset_mode="zero"))
    projs.append(
        {
            "from": "c2",
            "to": "out",
            "kind": "dense",
            "pool": pool,
            "weights": rng.integers(-30, 50, (n_pooled, 3)).tolist(),
        }
    )
    projs.append(
        {"from": "inp", "to": "out", "weights": rng.integers(-5, 9, (pops[0]["size"], 3)).tolist()}
    )
    if recurrent:
        projs.append(
            {
                "from": "out",
                "to": "c2",
                "weights": rng.integers(-9, 9, (3, pops[2]["size"])).tolist(),
            }
        )
    return {
        "format": FORMAT,
        "v_width": 16,
        "w_width": 8,
        "populations": pops,
        "projections": projs,
    }
