"""The benchmark code: the cycle bound L and the capacity search on hand-computed cases, and
quick-mode runs of the suite that produce well-formed results (nothing here is timed, no place
and route: the build and capacity runs replace the build by a stand-in). The block RAM model
itself is tested in test_boards_resources.py. About 25 s, plus about 20 s where Brian2 (the
``bench`` extra) is installed."""

import importlib.util
import json
import os
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment

from spikeforge.bench import (
    brian,
    builds,
    capacity,
    cycles,
    networks,
    results,
    suite,
    tables,
    timing,
)
from spikeforge.bench.top import BenchTop
from spikeforge.boards import resources
from spikeforge.boards.build import BuildError
from spikeforge.boards.registry import get_board
from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import FORMAT, Network
from spikeforge.gen.spike_io import NetworkRun
from spikeforge.spec.errors import SpikeforgeError


def lif(name, size):
    return {
        "name": name,
        "kind": "lif",
        "size": size,
        "v_th": 10,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 20,
        "t_ref": 0,
        "decay": [],
        "reset_mode": "zero",
        "bias": 0,
    }


def small_network(recurrent):
    pops = [{"name": "inp", "kind": "input", "size": 3}, lif("a", 5), lif("b", 2)]
    projs = [
        {"from": "inp", "to": "a", "weights": np.ones((3, 5), int)},
        {"from": "a", "to": "b", "weights": np.ones((5, 2), int)},
    ]
    if recurrent:
        projs.append({"from": "b", "to": "a", "weights": np.ones((2, 5), int)})
    return Network.from_dict(
        {"format": FORMAT, "v_width": 8, "w_width": 4, "populations": pops, "projections": projs}
    )


def test_lower_bound_by_hand():
    net = small_network(recurrent=True)
    inputs = np.array([[1, 0, 1], [0, 0, 0]])
    run = NetworkRun(
        spikes={"a": np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]]), "b": np.array([[1, 0], [0, 0]])}
    )
    # P = 2. Fan-out walk per event: inp -> a ceil(5/2) = 3, a -> b ceil(2/2) = 1,
    # b -> a 3. Updates: ceil(5/2) + ceil(2/2) = 4.
    # Step 0: 2 inputs * 3 + 2 a-spikes * 1 + 1 b-spike * 3 + 4 = 15; step 1: 1 + 4 = 5.
    assert cycles.fanout_cycles(net, 2) == {"inp": 3, "a": 1, "b": 3}
    assert cycles.lower_bound(net, 2, inputs, run).tolist() == [15, 5]
    # P = 1: 2 * 5 + 2 * 2 + 1 * 5 + 7 = 26, then 2 + 7 = 9.
    assert cycles.lower_bound(net, 1, inputs, run).tolist() == [26, 9]
    # Synaptic additions: every event times its full fan-out (2*5 + 2*2 + 1*5, then 2).
    assert cycles.synaptic_ops(net, inputs, run).tolist() == [19, 2]


def test_lower_bound_event_without_projection_costs_nothing():
    net = small_network(recurrent=False)
    inputs = np.array([[0, 1, 0]])
    run = NetworkRun(spikes={"a": np.zeros((1, 5), np.uint8), "b": np.ones((1, 2), np.uint8)})
    # P = 4: one input * ceil(5/4) = 2; b's spikes go nowhere; updates 2 + 1.
    assert cycles.lower_bound(net, 4, inputs, run).tolist() == [5]


def test_lower_bound_rejects_lanes():
    with pytest.raises(SpikeforgeError, match=r"lanes must be one of 1, 2, 4, 8, 16, not 3"):
        cycles.fanout_cycles(small_network(False), 3)


def test_bench_cli_cycles_quick(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert (
        main(
            [
                "bench",
                "--quick",
                "--parts",
                "cycles",
                "--lanes",
                "2",
                "--repeat",
                "1",
                "--doc",
                "none",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["machine"]["packages"]["amaranth"]
    assert [c["case"] for c in data["cycles"]] == ["feedforward", "recurrent"]
    for case in data["cycles"]:
        assert case["lanes"] == 2 and len(case["cycles"]) == case["steps"]
        # L is a lower bound: no step may take fewer cycles.
        assert all(c >= b for c, b in zip(case["cycles"], case["bound"]))
        assert 0 < case["ratio"] <= 1
    assert "L / cycles" in capsys.readouterr().out


# Brian2 2.9 still calls pyparsing names and arguments deprecated in pyparsing 3.3 (a
# DeprecationWarning subclass that older pyparsing versions do not define).
BRIAN2_PYPARSING = pytest.mark.filterwarnings("ignore:.*deprecated.* use:DeprecationWarning")


@BRIAN2_PYPARSING
def test_suite_quick_speed_and_brian2(tmp_path):
    data = suite.run_suite(
        ("speed", "brian2"),
        quick=True,
        repeat=1,
        speed_backends=("golden", "amaranth"),
        log=lambda _: None,
    )
    for entry in data["speed"]:
        for key in ("golden_b1", "golden_b64", "amaranth"):
            rate = entry[key]["neuron_steps_per_s"]
            assert rate["min"] <= rate["median"] <= rate["max"] and rate["n"] >= 1
        assert entry["verilog_s"]["median"] > 0
    if importlib.util.find_spec("brian2") is None:
        assert data["brian2"] == {"status": "not installed"}
    else:
        b = data["brian2"]
        assert b["rates_agree"] and list(b["batches"]) == ["1", "4"]
        for key, entry in b["batches"].items():
            assert entry["batch"] == int(key) and entry["neuron_steps"] == int(key) * 1024 * 100
            for name in (
                "golden_s",
                "brian2_s",
                "speedup",
                "speedup_cpu",
                "golden_neuron_steps_per_s",
                "brian2_neuron_steps_per_s",
            ):
                assert entry[name]["min"] <= entry[name]["median"] <= entry[name]["max"]
        assert b["vs_separate_runs"]["n"] == b["vs_separate_runs_cpu"]["n"] == 1

    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nintro\n\n{tables.BEGIN}\nOLD-BLOCK\n{tables.END}\n\nend\n")
    tables.update_doc(doc, data)
    text = doc.read_text()
    assert "OLD-BLOCK" not in text and text.startswith("# Performance\n\nintro")
    assert text.endswith(f"{tables.END}\n\nend\n")
    assert "Simulation speed" in text and "Golden model against Brian2" in text
    results.save_results(tmp_path / "r.json", data)
    assert json.loads((tmp_path / "r.json").read_text())["speed"][0]["case"] == "feedforward"


def test_render_build_rows():
    data = {
        "date": "d",
        "quick": True,
        "repeat": 1,
        "machine": results.machine_info(),
        "build": [
            {"board": "icebreaker", "network": "4-3-2", "lanes": 1, "error": "design does not fit"},
            {
                "board": "icebreaker",
                "network": "4-3-2",
                "lanes": 2,
                "luts": 10,
                "ffs": 5,
                "brams": 1,
                "sprams": 0,
                "dsps": 0,
                "fmax_mhz": 30.0,
                "build_s": {"median": 2.0, "min": 2.0, "max": 2.0, "n": 1},
            },
        ],
    }
    text = tables.render_tables(data)
    assert "does not build: design does not fit" in text
    assert "| icebreaker | 4-3-2 | 2 | 10 | 5 | 1 | 0 | 0 | 30.0 | - | - | 2 [2, 2] |" in text


def test_update_doc_needs_block(tmp_path):
    doc = tmp_path / "p.md"
    doc.write_text("no block\n")
    with pytest.raises(SpikeforgeError, match=r"has no generated block"):
        tables.update_doc(doc, {})


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--parts", "cycles,nope"],
            r"bench parts must be among cycles, speed, build, capacity, "
            r"brian2, conv, not 'nope'",
        ),
        (
            ["--backend", "golden"],
            r"--backend must be one of amaranth, verilator, icarus, "
            r"not 'golden'",
        ),
        (["--repeat", "0"], r"--repeat must be an integer in \[1, 100\], not 0"),
        (
            ["--lanes", "1,x"],
            r"argument --lanes: must be a comma-separated list of integers, not '1,x'",
        ),
        (["--boards", "nope"], r"unknown board 'nope'"),
    ],
)
def test_bench_cli_errors(argv, message, capsys, tmp_path):
    assert main(["bench", "--doc", "none", "-o", str(tmp_path / "r.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert re.search(message, err)


def test_merge_keeps_other_parts_and_a_measured_brian2(tmp_path):
    path = tmp_path / "r.json"
    base = {"date": "d1", "quick": False, "repeat": 1, "machine": {"cpu": "x"}}
    results.save_results(
        path,
        results.merge_results(
            path, dict(base, brian2={"status": "ok"}, cycles=[{"case": "a", "lanes": 1}])
        ),
    )
    later = dict(base, date="d2", brian2={"status": "not installed"}, speed=[{"case": "b"}])
    merged = results.merge_results(path, later)
    assert merged["brian2"] == {"status": "ok"} and merged["cycles"] == [{"case": "a", "lanes": 1}]
    assert merged["speed"] == [{"case": "b"}]
    assert merged["runs"]["cycles"]["date"] == "d1" and merged["runs"]["speed"]["date"] == "d2"


def brian2_or_skip():
    """Brian2 (the ``bench`` extra), or a skip unless SPIKEFORGE_REQUIRE_SIMULATORS names it."""
    if importlib.util.find_spec("brian2") is None:
        if "brian2" in os.environ.get("SPIKEFORGE_REQUIRE_SIMULATORS", "").split(","):
            pytest.fail("brian2 is required (SPIKEFORGE_REQUIRE_SIMULATORS) but not installed")
        pytest.skip("brian2 is not installed (pip install 'spikeforge[bench]')")
    import brian2

    return brian2


@BRIAN2_PYPARSING
def test_brian_batch_copies_are_independent():
    """Brian2's batch is one network of block-diagonal copies: a copy sees only its inputs."""
    brian2 = brian2_or_skip()
    net = networks.brian_network()
    one = networks.poisson_inputs(60, 256, 0.05, seed=3)
    inputs = np.stack(
        [one, np.zeros_like(one), one, networks.poisson_inputs(60, 256, 0.05, seed=4)]
    )
    counts, run_s = brian._brian_run(brian2, net, inputs)
    assert counts.shape == (4, 1024) and run_s["wall"] > 0 and run_s["cpu"] > 0
    assert counts[0].sum() > 0 and not counts[1].any()
    assert np.array_equal(counts[0], counts[2]) and not np.array_equal(counts[0], counts[3])
    single, _ = brian._brian_run(brian2, net, one[np.newaxis])
    assert np.array_equal(single[0], counts[0])


@BRIAN2_PYPARSING
def test_brian_comparison_rates_agree():
    """The comparison runs both models on the same inputs at both batches; their mean rates
    agree within the stated tolerance, and every ratio is a spread over the repeats."""
    brian2_or_skip()
    result = brian.brian_comparison(steps=200, repeat=2, batch=4, log=lambda line: None)
    assert result["status"] == "ok" and result["rates_agree"]
    for key, batch in (("1", 1), ("4", 4)):
        entry = result["batches"][key]
        assert entry["batch"] == batch and entry["neuron_steps"] == 1024 * batch * 200
        assert entry["rate_rel_diff"] <= result["tolerance"]
        assert entry["golden_rate_hz"] > 50 and entry["speedup"]["n"] == 2


def test_ratio_spread_pairs_repeats():
    # Per-repeat ratios 4/2 and 9/3, not a ratio of medians.
    assert timing.ratio_spread([4.0, 9.0], [2.0, 3.0]) == {
        "median": 2.5,
        "min": 2.0,
        "max": 3.0,
        "n": 2,
    }


def test_render_brian2_rows():
    spread = lambda x: {"median": x, "min": x / 2, "max": 2 * x, "n": 3}  # noqa: E731
    entry = {
        "golden_s": spread(0.5),
        "brian2_s": spread(2.0),
        "speedup": spread(4.0),
        "speedup_cpu": spread(3.0),
        "golden_neuron_steps_per_s": spread(1e6),
        "brian2_neuron_steps_per_s": spread(2.5e5),
        "golden_rate_hz": 147.25,
        "brian2_rate_hz": 147.0,
        "rate_rel_diff": 0.0017,
        "rates_agree": True,
    }
    data = {
        "date": "d",
        "quick": False,
        "repeat": 3,
        "machine": results.machine_info(),
        "brian2": {
            "status": "ok",
            "brian2": "2.9.0",
            "steps": 1000,
            "neurons": 1024,
            "tolerance": 0.02,
            "vs_separate_runs": spread(40.0),
            "vs_separate_runs_cpu": spread(30.0),
            "batches": {"1": dict(entry, batch=1), "64": dict(entry, batch=64, rates_agree=False)},
        },
    }
    text = tables.render_tables(data)
    assert (
        "| 1 | 0.5 [0.25, 1] | 2 [1, 4] | 1e+06 [5e+05, 2e+06] | 2.5e+05 [1.25e+05, 5e+05] "
        "| 4 [2, 8] | 3 [1.5, 6] | 147.25 / 147.00 | agree (0.0017, tolerance 0.02) |"
    ) in text
    assert "| 64 | 0.5 [0.25, 1] |" in text and "DISAGREE" in text
    assert (
        "Golden model at batch 64 against 64 separate Brian2 runs (which take 64 times one "
        "run): 40 [20, 80] times the throughput (CPU time: 30 [15, 60])."
    ) in text


# --- Capacity (block RAM model, confirmation loop, table) ---------------------------------------


def test_largest_fit_by_hand():
    # iCE40UP5K, 30 EBR: N = 208 takes weights 13312x8 = 26, acc 208x14 = 1 (one bank: the
    # network is feed-forward), state 208x18 = 2, spike FIFO 208x9 = 1 and no bias memory (every
    # bias is 0): 30. N = 209 needs a 27th weight block.
    assert capacity.largest_fit(30, 1, "ice40") == 208
    # One neuron's 64 weights (512 bits) already need a block.
    assert capacity.largest_fit(0, 1, "ice40") == 0


def fake_build(limit, used=lambda predicted: predicted):
    """A stand-in for ``boards.build.build``: the top is elaborated for the board's platform (no
    tools run); a design of more than ``limit`` neurons does not fit, one that does uses
    ``used(model blocks)`` block RAMs. A build with SPRAM weights is recorded as ``("spram",
    n)`` and uses its model's block RAMs and 4 SPRAMs."""
    calls = []

    def build(top, board, build_dir, *, check_timing=True):
        assert check_timing is False and isinstance(top, BenchTop)
        Fragment.get(top, board.platform())
        n = top.plan.populations[1].size
        calls.append(("spram", n) if top.runtime_weights else n)
        if n > limit:
            raise BuildError(f"design does not fit the {board.device} of {board.name}")
        predicted = resources.memory_model(top.plan, board.family, top.runtime_weights)[0]
        if top.runtime_weights:
            return {
                "luts": 2000 + n,
                "luts_available": 5280,
                "ffs": 500,
                "brams": predicted,
                "sprams": 4,
                "fmax_mhz": 31.0,
            }
        return {
            "luts": 1000 + n,
            "luts_available": 5280,
            "ffs": 500,
            "brams": used(predicted),
            "sprams": 0,
            "fmax_mhz": 30.0,
            "utilization": {"ICESTORM_RAM": [used(predicted), 30]},
        }

    return build, calls


def test_capacity_confirmed_first_time(monkeypatch):
    build, calls = fake_build(limit=10_000)
    monkeypatch.setattr(capacity, "build", build)
    (entry,) = capacity.measure_capacity(["icebreaker"], confirm=["icebreaker"], log=lambda _: None)
    assert calls == [208, ("spram", 2048)]
    assert entry["model"]["neurons"] == 208 and entry["model"]["synapses"] == 208 * 64
    # With the weights in SPRAM, on two lanes that share every SPRAM word: the four SPRAMs
    # hold 65,536 words of two weights, 21 block RAMs the rest.
    spram = entry["spram"]
    assert spram["lanes"] == capacity.SPRAM_MIN_LANES == 2
    assert (spram["model"]["neurons"], spram["model"]["synapses"]) == (2048, 131072)
    assert (spram["model"]["sprams"], spram["model"]["blocks"]) == (4, 21)
    assert spram["confirmed"]["sprams"] == 4 and spram["confirmed"]["luts"] == 4048
    assert entry["model"]["blocks"] == 30 and entry["model"]["blocks_available"] == 30
    best = entry["confirmed"]
    assert best["neurons"] == 208 and best["fitted"] and best["brams"] == 30
    assert best["brams_available"] == 30 and best["luts"] == 1208


def test_capacity_shrinks_when_a_build_does_not_fit(monkeypatch):
    build, calls = fake_build(limit=195)
    monkeypatch.setattr(capacity, "build", build)
    (entry,) = capacity.measure_capacity(["icebreaker"], confirm=["icebreaker"], log=lambda _: None)
    # Banked weights (docs/array.md): 200 neurons' 12,800 words are 25 banks of 512x8, 29
    # blocks in all, which the stand-in refuses; so 192 neurons (24 weight blocks, 28 in all).
    assert calls == [208, 200, 192, ("spram", 2048)]
    assert "does not fit" in entry["spram"]["error"] and "confirmed" not in entry["spram"]
    assert [a["fitted"] for a in entry["attempts"]] == [False, False, True]
    assert "does not fit" in entry["attempts"][0]["error"]
    assert entry["confirmed"]["neurons"] == 192


def test_capacity_grows_when_the_model_over_counts(monkeypatch):
    # The build uses one block fewer than modelled: the next try has one block more.
    build, calls = fake_build(limit=10_000, used=lambda predicted: predicted - 1)
    monkeypatch.setattr(capacity, "build", build)
    (entry,) = capacity.measure_capacity(
        ["icebreaker"], confirm=["icebreaker"], attempts=2, log=lambda _: None
    )
    assert calls == [208, 216, ("spram", 2048)] and entry["confirmed"]["neurons"] == 216


def test_capacity_none_builds(monkeypatch):
    build, calls = fake_build(limit=0)
    monkeypatch.setattr(capacity, "build", build)
    (entry,) = capacity.measure_capacity(
        ["icebreaker"], confirm=["icebreaker"], attempts=2, log=lambda _: None
    )
    assert len(calls) == 3 and entry["confirmed"] is None
    text = tables.render_tables(
        {
            "date": "d",
            "quick": False,
            "repeat": 1,
            "machine": results.machine_info(),
            "capacity": [entry],
        }
    )
    assert f"none of 208, {calls[1]} built: design does not fit" in text


def test_capacity_cli_table_and_merge(monkeypatch, tmp_path, capsys):
    build, _ = fake_build(limit=10_000)
    monkeypatch.setattr(capacity, "build", build)
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "bench",
                "--parts",
                "capacity",
                "--boards",
                "icebreaker",
                "--doc",
                "none",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    # The build time is the stand-in's (elaboration), so any number.
    assert re.search(
        r"\| icebreaker \| iCE40UP5K-SG48 \| 1 \| 208 \| 13312 \| 30/30 \(weights0 "
        r"26, acc0 1, state0 2, spike_fifo 1\) \| 208 \| 13312 \| "
        r"1208/5280 \| 30/30 \(30\) \| 30.0 \| \d+ \| 208: 30 BRAM \|",
        text,
    )
    assert "| tangnano9k | GW1NR-LV9QN88PC6/I5 | 1 | 738 | 47232 | 26/26 (" in text
    # Four boards of the block RAM table, the iCESugar in the SPRAM table.
    assert text.count("model only") == 5
    assert re.search(
        r"\| icebreaker \| 2 \| 2048 \| 131072 \| 4/4 \| 21/30 \| 2048 \| 4048/5280 \| 21 "
        r"\| 4 \| 31.0 \| \d+ \|",
        text,
    )
    # A later run confirming another board keeps the iCEBreaker's builds.
    assert (
        main(
            [
                "bench",
                "--parts",
                "capacity",
                "--boards",
                "icesugar",
                "--doc",
                "none",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    confirmed = {
        e["board"]: e["confirmed"]["neurons"] for e in data["capacity"] if "confirmed" in e
    }
    assert confirmed == {"icebreaker": 208, "icesugar": 208}
    assert [e["board"] for e in data["capacity"]] == [
        "icebreaker",
        "icesugar",
        "ulx3s-85f",
        "orangecrab",
        "tangnano9k",
    ]


def test_builds_record_figures_errors_and_throughput(monkeypatch, tmp_path):
    """A build entry has the report's figures, or the error of a design that does not fit; with
    the cycles of the same case, its latency and synaptic ops/s at Fmax follow."""
    calls = []

    def build(top, board, build_dir, *, clock_mhz, check_timing):
        assert isinstance(top, BenchTop) and check_timing is False
        Fragment.get(top, board.platform())
        calls.append((top.plan.lanes, clock_mhz, os.path.basename(build_dir)))
        if top.plan.lanes == 2:
            raise BuildError(f"design does not fit the {board.device} of {board.name}")
        figures = dict(luts=100, luts_available=5280, ffs=50, brams=3, sprams=0, dsps=0)
        return dict(figures, fmax_mhz=40.0, clock_mhz=45.0, timing_met=False, utilization={})

    monkeypatch.setattr(builds, "build", build)
    entries = builds.measure_builds(
        ["icebreaker"], quick=True, lanes=(1, 2), repeat=2, build_root=tmp_path, log=lambda _: None
    )
    # The iCE40 builds are constrained to 45 MHz; a timing repeats the build.
    assert calls == [(1, 45.0, "icebreaker-feedforward-p1-s4")] * 2 + [
        (2, 45.0, "icebreaker-feedforward-p2-s4")
    ]
    ok, failed = entries
    assert (ok["network"], ok["lanes"], ok["luts"], ok["fmax_mhz"]) == ("32-16-4", 1, 100, 40.0)
    assert ok["build_s"]["n"] == 2 and "utilization" not in ok
    assert failed["error"] == "design does not fit the iCE40UP5K-SG48 of icebreaker"
    assert "luts" not in failed
    both = {
        "cycles": [
            {"case": "feedforward", "lanes": 1, "cycles": [30, 50], "synaptic_ops_per_step": 400.0}
        ],
        "build": entries,
    }
    results.derive_throughput(both)
    # 40 cycles per step at 40 MHz: 1 us per step, 400 additions each: 4e8 per second.
    assert ok["latency_us"] == pytest.approx(1.0) and ok["synaptic_ops_per_s"] == pytest.approx(4e8)
    assert "latency_us" not in failed


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f", "orangecrab", "tangnano9k"])
def test_bench_top_is_the_array_behind_one_led(board):
    """On every board the top holds the array and the LED's buffer, and its only ports are the
    clock, the reset and the pin of the board's first LED (on the OrangeCrab a subsignal of its
    RGB LED): nothing of the array reaches a pin but through the fold."""
    board = get_board(board)
    top = BenchTop(board, compile_network(networks.capacity_network(4), 1))
    text = rtlil.convert(top, platform=board.platform())
    body = re.search(r"^module \\top\n(.*?)^end$", text, re.S | re.M).group(1)
    resource, number, subsignal = board.leds[0]
    pin = f"{resource}_{number}" + (f"__{subsignal}" if subsignal else "") + "__io"
    ports = re.findall(r"^ *wire width \d+ (?:input|output|inout) \d+ +\\(\S+)$", body, re.M)
    assert sorted(ports) == sorted(["clk", "rst", pin])
    assert sorted(re.findall(r"^ *cell \\top\.(\w+) ", body, re.M)) == ["array", "led"]
    assert re.search(r"^ *wire width 32 +\\lfsr$", body, re.M)
