"""``spikeforge explore``: re-quantization, the sweep, caching and resume, a local Dask cluster,
and one real place-and-route point. About 40 s, most of it the iCEBreaker build."""

import csv
import json
import re

import distributed
import numpy as np
import pytest

from spikeforge.bench.networks import feedforward_network
from spikeforge.cli import explore as ex
from spikeforge.cli.main import main
from spikeforge.cli.train_digits import accuracy, load_test_digits, shipped_network
from spikeforge.gen.network import Network, save_network
from spikeforge.spec.errors import SpikeforgeError


def tiny():
    return feedforward_network((4, 3, 2), seed=5)


def test_requantize_scales_weights_and_membrane_values():
    net = tiny()
    q = ex.requantize(net, 12, 4)
    w = net.projections[0].weights
    # 8 -> 4 bits: divide by 16, round to nearest, ties up.
    assert np.array_equal(q.projections[0].weights, np.clip((w + 8) >> 4, -8, 7))
    hidden = q.population("hidden").params
    assert (q.v_width, q.w_width, hidden.v_th) == (12, 4, (1200 + 8) >> 4)
    assert hidden.decay == net.population("hidden").params.decay
    up = ex.requantize(net, 16, 8)
    assert up == net or up.network_hash() == net.network_hash()


def test_requantize_keeps_per_neuron_parameters():
    d = tiny().to_dict()
    hidden = next(p for p in d["populations"] if p["name"] == "hidden")
    hidden["v_th"] = [1200 + 16 * j for j in range(hidden["size"])]
    hidden["decay"] = [[4] if j % 2 else [3, -12] for j in range(hidden["size"])]
    q = ex.requantize(Network.from_dict(d), 12, 4).population("hidden")
    assert q.column("v_th").tolist() == [
        (1200 + 16 * j + 8) >> 4 for j in range(len(hidden["v_th"]))
    ]
    # The terms past v_width are dropped from every neuron's decay.
    assert q.decays() == tuple((4,) if j % 2 else (3,) for j in range(len(hidden["v_th"])))
    assert q.params.v_peak >= q.column("v_th").max()


def test_requantize_rejects_a_threshold_that_does_not_fit():
    with pytest.raises(
        SpikeforgeError,
        match=r"population hidden: v_th scaled for w_width 8 "
        r"does not fit v_width 8 \(\[-128, 127\]\)",
    ):
        ex.requantize(tiny(), 8, 8)


@pytest.mark.parametrize(
    "args, message",
    [
        (([3], [4], [16], [8]), r"--lanes must be one of 1, 2, 4, 8, 16, not 3"),
        (([1], [5], [16], [8]), r"--stages must be an integer in \[1, 4\], not 5"),
        (([1], [4], [1], [8]), r"--v-width must be an integer in \[2, 32\], not 1"),
        (([1], [4], [16], [17]), r"--w-width must be an integer in \[2, 16\], not 17"),
    ],
)
def test_sweep_points_errors(args, message):
    with pytest.raises(SpikeforgeError, match="^" + message + "$"):
        ex.sweep_points(*args)


def test_sweep_points_order():
    points = ex.sweep_points([1, 2], [4], [12, 16], [8])
    assert points == [
        {"lanes": p, "stages": 4, "v_width": v, "w_width": 8} for p in (1, 2) for v in (12, 16)
    ]


def test_dask_cluster_cache_and_resume(tmp_path, monkeypatch):
    net = tiny()
    points = ex.sweep_points([1, 2], [4], [12, 16], [4, 8])
    cache = tmp_path / "cache"
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        rows = ex.explore(
            net,
            "icebreaker",
            points,
            mode="model",
            cache_dir=cache,
            scheduler=client,
            progress=False,
        )
    assert [{k: r[k] for k in ("lanes", "v_width", "w_width")} for r in rows] == [
        {k: p[k] for k in ("lanes", "v_width", "w_width")} for p in points
    ]
    assert all(r["status"] == "ok" and not r["cached"] for r in rows)
    assert len(list(cache.glob("*.json"))) == len(points)
    # Fewer lanes, more cycles; the synaptic work does not depend on the lanes.
    by_lanes = {(r["lanes"], r["v_width"], r["w_width"]): r for r in rows}
    assert by_lanes[1, 16, 8]["cycles_bound"] > by_lanes[2, 16, 8]["cycles_bound"]
    assert (
        by_lanes[1, 16, 8]["synaptic_ops_per_step"] == by_lanes[2, 16, 8]["synaptic_ops_per_step"]
    )

    # Resume: one finished point lost; only that one is evaluated again, in this process.
    calls = []
    real = ex.evaluate_point
    monkeypatch.setattr(ex, "evaluate_point", lambda *a: calls.append(a[2]) or real(*a))
    (cache / f"{rows[1]['key']}.json").unlink()
    again = ex.explore(
        net, "icebreaker", points, mode="model", cache_dir=cache, jobs=1, progress=False
    )
    assert calls == [points[1]]
    assert [r["cached"] for r in again] == [True, False] + [True] * (len(points) - 2)
    assert [r["key"] for r in again] == [r["key"] for r in rows]
    # A different input set is a different point.
    other = ex.explore(
        net,
        "icebreaker",
        points[:1],
        mode="model",
        cache_dir=cache,
        jobs=1,
        inputs=np.ones((1, 2, 4), np.uint8),
        progress=False,
    )
    assert other[0]["key"] != rows[0]["key"] and len(calls) == 2


def test_model_mode_accuracy_matches_the_digit_classifier(tmp_path):
    net = shipped_network()
    images, labels = load_test_digits()
    np.savez(tmp_path / "test.npz", images=images[:40], labels=labels[:40])
    inputs, y = ex.load_test_set(tmp_path / "test.npz", net)
    rows = ex.explore(
        net,
        "icebreaker",
        ex.sweep_points([1], [4], [16], [8]),
        mode="model",
        cache_dir=tmp_path / "c",
        inputs=inputs,
        labels=y,
        jobs=1,
        progress=False,
    )
    assert rows[0]["accuracy"] == accuracy(net, images[:40], labels[:40])


def test_load_test_set_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(
        SpikeforgeError,
        match=r"a test set needs 'labels' and 'spikes' or "
        r"'images', not x",
    ):
        ex.load_test_set(tmp_path / "bad.npz", tiny())
    np.savez(tmp_path / "shape.npz", spikes=np.zeros((2, 3, 5)), labels=np.zeros(2))
    with pytest.raises(
        SpikeforgeError,
        match=r"spikes must have shape \(2, T, 4\), not "
        r"\(2, 3, 5\)",
    ):
        ex.load_test_set(tmp_path / "shape.npz", tiny())


def test_one_real_build_point_through_the_cli(tmp_path, capsys):
    # Paths under /tmp on purpose: the YoWASP tools must cope with them.
    save_network(tiny(), tmp_path / "net.json")
    argv = [
        "explore",
        str(tmp_path / "net.json"),
        "--board",
        "icebreaker",
        "--lanes",
        "1",
        "--stages",
        "2",
        "--jobs",
        "1",
        "--cache",
        str(tmp_path / "cache"),
        "-o",
        str(tmp_path / "table.csv"),
    ]
    assert main(argv) == 0
    with open(tmp_path / "table.csv", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["status"] == "ok" and int(row["luts"]) > 0 and int(row["dsps"]) == 0
    assert float(row["fmax_mhz"]) > 0 and float(row["synaptic_ops_per_s"]) > 0
    assert (tmp_path / "table.png").stat().st_size > 0
    assert "(0 from the cache, 0 failed)" in capsys.readouterr().out
    # The same sweep again costs nothing; a JSON table has the same figures.
    assert main(argv[:-1] + [str(tmp_path / "table.json")]) == 0
    assert "(1 from the cache, 0 failed)" in capsys.readouterr().out
    (again,) = json.loads((tmp_path / "table.json").read_text())
    assert again["luts"] == int(row["luts"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mode", "fast"], r"--mode must be one of build, synth, model, not 'fast'"),
        (["-o", "t.txt"], r"-o must end in \.csv or \.json, not 't\.txt'"),
        (["--lanes", "3"], r"--lanes must be one of 1, 2, 4, 8, 16, not 3"),
        (["--jobs", "0"], r"--jobs must be a positive integer, not 0"),
        (["--v-width", "a"], r"argument --v-width: must be a comma-separated list of integers"),
        (["--board", "nope"], r"unknown board 'nope'"),
    ],
)
def test_explore_cli_errors(extra, message, tmp_path, capsys):
    save_network(tiny(), tmp_path / "net.json")
    argv = [
        "explore",
        str(tmp_path / "net.json"),
        "--board",
        "icebreaker",
        "--mode",
        "model",
        "--cache",
        str(tmp_path / "c"),
        "-o",
        str(tmp_path / "t.csv"),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)
