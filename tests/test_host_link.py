"""The host link at byte-stream level: protocol, driver and HostLink core against the golden model.

The board is :class:`SimulatedBoard` (HostLink in Amaranth's simulator, bytes handed over directly);
the UART-level runs are in test_host_link_uart.py. Runtime about 25 s of CPU (45 s on two
shared cores).
"""

import struct

import numpy as np
import pytest
from host_link_cases import FaultyPort, relayout_variant, small_network
from network_cases import distinct_decays, many_decays_network, random_spikes

from spikeforge.bench.networks import capacity_network
from spikeforge.boards.host import HostDriver, HostLinkError, SimulatedBoard
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.hdl.host_link import HostLink
from spikeforge.sim.network_golden import run_network
from spikeforge.spec import protocol as p
from spikeforge.spec.errors import SpikeforgeError


def _assert_same(run, golden):
    assert set(run.spikes) == set(golden.spikes)
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)


def _fired(run):
    return sum(int(s.sum()) for s in run.spikes.values())


def _exchange(board, frame):
    """Send raw bytes, return the one response frame as (code, payload)."""
    board.write(frame)
    decoder = p.FrameDecoder()
    while True:
        data = board.read(1)
        assert data, "no response from the board"
        frames = decoder.feed(data)
        if frames:
            return frames[0]


# --- protocol ------------------------------------------------------------------------------------


def test_crc_and_frames():
    assert p.crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    frame = p.encode_frame(p.CMD_STEP, p.encode_step(0x10002, [1, 7, 300]))
    assert frame[:6] == bytes([p.SYNC, p.CMD_STEP, 8, 0, 2, 0])  # LEN, then timestep's low 16 bits
    assert p.crc16(frame[1:]) == 0  # CRC sent high byte first
    decoder = p.FrameDecoder()
    # Junk before the frame is skipped; a frame may arrive in pieces.
    assert decoder.feed(b"\x00\x13" + frame[:5]) == []
    assert decoder.feed(frame[5:]) == [(p.CMD_STEP, p.encode_step(2, [1, 7, 300]))]
    assert decoder.skipped == 2
    bad = bytearray(frame)
    bad[5] ^= 1
    with pytest.raises(
        p.FrameError, match=r"^response frame with a bad CRC \(code 0x03, 8 bytes\)$"
    ):
        p.FrameDecoder().feed(bytes(bad))
    assert p.decode_step(bytes(8) + bytes([1, 0x34, 0x12])) == (0, 0, [(1, 0x1234)])
    with pytest.raises(
        p.FrameError, match=r"^step response has 9 bytes, expected 8 \+ 3 per spike$"
    ):
        p.decode_step(bytes(9))
    with pytest.raises(p.FrameError, match=r"^status response has 3 bytes, expected 19$"):
        p.decode_status(bytes(3))
    with pytest.raises(p.FrameError, match=r"^identify response has magic b'XXXX', not a "):
        p.decode_identity(b"XXXX" + bytes(65))
    with pytest.raises(
        SpikeforgeError,
        match=r"^frame code must be a byte and the payload at most "
        r"65535 bytes, not 256 and 0$",
    ):
        p.encode_frame(256)


def test_host_link_parameter_errors():
    plan = compile_network(small_network(0), 1)
    with pytest.raises(
        TypeError,
        match=r"^timeout must be an integer in \[16, 4294967295\], "
        r"not 3$",
    ):
        HostLink(plan, timeout=3)
    big = compile_network(small_network(0), 1)
    big.populations[0] = type(big.populations[0])("in", 40000, True)
    with pytest.raises(
        ValueError,
        match=r"^the host link carries at most 32766 inputs, 255 "
        r"populations and 21842 LIF neurons, not 40000, ",
    ):
        HostLink(big)


# --- end to end ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,lanes", [(1, 1), (2, 2), (3, 4)])
def test_run_matches_golden(seed, lanes):
    net = small_network(seed, recurrent=seed == 2)
    plan = compile_network(net, lanes)
    spikes = random_spikes(np.random.default_rng(seed), net, 8, batch=2, activity=0.4)
    driver = HostDriver(SimulatedBoard(plan))
    identity = driver.check_plan(plan)
    assert identity["network_hash"] == net.network_hash()
    assert (identity["magic"], identity["version"], identity["lanes"]) == ("SPKF", p.VERSION, lanes)
    assert identity["layout_hash"] == plan.layout_hash()
    run = driver.run(spikes)  # the plan of check_plan
    golden = run_network(net, spikes)
    _assert_same(run, golden)
    assert _fired(golden) > 0
    assert run.cycles.shape == (2, 8) and (run.cycles > 0).all()
    status = driver.status()
    assert status["timestep"] == 8 and status["cycles"] == run.cycles[-1, -1]
    assert status["frames"] == driver.attempts and driver.recovered == 0
    assert not status["busy"] and not status["modified"]
    assert status["crc_errors"] == status["timeouts"] == status["errors"] == 0


def test_step_and_reset():
    net = small_network(4)
    plan = compile_network(net, 2)
    spikes = random_spikes(np.random.default_rng(4), net, 5, activity=0.5)
    golden = run_network(net, spikes)
    driver = HostDriver(SimulatedBoard(plan))
    for _ in range(2):  # a reset returns to the initial state: the same run again
        driver.reset()
        for t in range(5):
            out, cycles = driver.step(np.flatnonzero(spikes[t]))
            expected = {
                (plan.populations.index(q), int(i))
                for q in plan.lif_populations
                for i in np.flatnonzero(golden.spikes[q.name][t])
            }
            assert set(out) == expected and len(out) == len(expected) and cycles > 0


def test_runtime_load_changes_outputs_as_golden_predicts():
    net = small_network(5, n_lif=2, max_size=6)
    other = relayout_variant(net, 5)
    assert other.network_hash() != net.network_hash()
    plan = compile_network(net, 2)
    other_plan = compile_network(other, 2)
    spikes = random_spikes(np.random.default_rng(5), net, 8, activity=0.5)
    golden, golden_other = run_network(net, spikes), run_network(other, spikes)
    assert any((golden.spikes[n] != golden_other.spikes[n]).any() for n in golden.spikes)
    driver = HostDriver(SimulatedBoard(plan))
    _assert_same(driver.run(spikes, plan), golden)
    driver.load(other_plan)
    assert driver.status()["modified"]
    _assert_same(driver.run(spikes, other_plan), golden_other)
    driver.load(plan)
    _assert_same(driver.run(spikes, plan), golden)


def test_load_is_pipelined_and_recovers_every_write():
    # CFG frames go out without waiting for each answer. Damage inside a batch (a bit flipped,
    # a byte dropped, a frame cut short, a SYNC lost so that the board skips a frame without a
    # word) makes the driver send the batch again; the network loaded is the golden model's.
    net = small_network(5, n_lif=2, max_size=6)
    other = relayout_variant(net, 5)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    spikes = random_spikes(np.random.default_rng(5), net, 8, activity=0.5)
    clean = FaultyPort(SimulatedBoard(plan))
    frames = HostDriver(clean).load(other_plan)
    assert frames == 24 and clean.longest_burst == frames  # all 24 in one batch
    # A bigger load: as many frames as the board's receive buffer holds before the first read
    # (no BIAS frames: each population's biases are one value, which the PARAMS rows carry).
    net13 = small_network(13, n_lif=2, max_size=6)
    board = SimulatedBoard(compile_network(net13, 2))
    port = FaultyPort(board)
    assert HostDriver(port).load(compile_network(relayout_variant(net13, 13), 2)) == 42
    assert port.longest_burst == p.RX_BUFFER // (10 + board.link.data_bytes) == 19
    faults = {4: "flip", 9: "unsync", 14: "drop", 19: "truncate", 30: "unsync"}
    port = FaultyPort(SimulatedBoard(plan), write_faults=faults)
    driver = HostDriver(port)
    driver.load(other_plan)
    assert port.injected == len(faults) and driver.recovered == 2  # both batches hit
    _assert_same(driver.run(spikes, other_plan), run_network(other, spikes))


def test_load_refuses_another_layout():
    driver = HostDriver(SimulatedBoard(compile_network(small_network(6), 1)))
    with pytest.raises(
        HostLinkError,
        match=r"^host link: run needs the network: call "
        r"check_plan\(plan\) or load\(plan\) first, or pass plan$",
    ):
        driver.run(np.zeros((1, 1), np.uint8))
    with pytest.raises(
        SpikeforgeError,
        match=r"^the board's design has another layout than the "
        r"network: lanes 1 \(network: 2\)",
    ):
        driver.load(compile_network(small_network(6), 2))
    # Same sizes and widths, another decay: the cores are built for their decays, so a runtime
    # load cannot change one.
    net = small_network(6)
    d = net.to_dict()
    lif = next(pop for pop in d["populations"] if pop["kind"] == "lif")
    lif["decay"] = [1] if lif["decay"] != [1] else [2]
    with pytest.raises(
        SpikeforgeError,
        match=r"^the board's design has another layout than the "
        r"network: layout_hash [0-9a-f]{16} \(network: "
        r"[0-9a-f]{16}: other decays, projections, t_ref "
        r"range or per-neuron biases\); rebuild with spikeforge build$",
    ):
        driver.load(compile_network(Network.from_dict(d), 1))


# --- errors on the link --------------------------------------------------------------------------


def test_bad_frames_are_answered_and_change_nothing():
    net = small_network(7)
    plan = compile_network(net, 1)
    board = SimulatedBoard(plan)
    n_in = plan.n_inputs
    error = p.RSP_ERROR
    cases = [
        (p.encode_frame(0x42), (error, bytes([p.ERR_COMMAND, 0x42]))),
        (p.encode_frame(p.CMD_STATUS, b"\x00"), (error, bytes([p.ERR_LENGTH, p.CMD_STATUS]))),
        (p.encode_frame(p.CMD_STEP, b"\x00"), (error, bytes([p.ERR_LENGTH, p.CMD_STEP]))),
        (p.encode_frame(p.CMD_STEP), (error, bytes([p.ERR_LENGTH, p.CMD_STEP]))),  # no timestep
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(0, range(n_in + 1))),
            (error, bytes([p.ERR_LENGTH, p.CMD_STEP])),
        ),
        # Out of range, repeated, descending: the step must not run.
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(0, [n_in])),
            (error, bytes([p.ERR_PAYLOAD, p.CMD_STEP])),
        ),
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(0, [0, 0]))
            if n_in > 1
            else p.encode_frame(p.CMD_STEP, p.encode_step(0, [1])),
            (error, bytes([p.ERR_PAYLOAD, p.CMD_STEP])),
        ),
        # For another timestep (the board is at 0): refused, whole and checked as it is.
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(1, [0])),
            (error, bytes([p.ERR_SEQUENCE, p.CMD_STEP])),
        ),
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(0xFFFF, [])),
            (error, bytes([p.ERR_SEQUENCE, p.CMD_STEP])),
        ),
        (
            p.encode_frame(p.CMD_CFG, p.encode_cfg(0, 1, 0, 0, board.link.data_bytes)),
            (error, bytes([p.ERR_PAYLOAD, p.CMD_CFG])),
        ),
        (
            p.encode_frame(
                p.CMD_CFG, p.encode_cfg(0, 0, plan.weight_words, 0, board.link.data_bytes)
            ),
            (error, bytes([p.ERR_PAYLOAD, p.CMD_CFG])),
        ),
        # A truncated frame: the byte timeout drops it.
        (
            p.encode_frame(p.CMD_STEP, p.encode_step(0, [0]))[:5],
            (error, bytes([p.ERR_TIMEOUT, p.CMD_STEP])),
        ),
        # A bit flipped in the payload.
        (
            bytes([p.SYNC, p.CMD_STEP, 2, 0, 1, 0]) + p.encode_frame(p.CMD_STEP, b"\x00\x00")[-2:],
            (error, bytes([p.ERR_CRC, p.CMD_STEP])),
        ),
    ]
    for frame, expected in cases:
        assert _exchange(board, frame) == expected, frame.hex()
    # Junk between frames is skipped without an answer.
    board.write(b"\x00\x11\x22")
    code, data = _exchange(board, p.encode_frame(p.CMD_STATUS))
    status = p.decode_status(data)
    assert status["timestep"] == 0 and not status["modified"]
    assert (status["crc_errors"], status["timeouts"], status["errors"]) == (1, 1, 11)
    # Nothing reached the network: it still runs exactly as the golden model.
    spikes = random_spikes(np.random.default_rng(7), net, 6, activity=0.5)
    _assert_same(HostDriver(board).run(spikes, plan), run_network(net, spikes))


# Frame and byte numbers count from the STATUS that `run` starts with (weights loaded?; its
# response is 25 bytes, RESET's 6, IDENTIFY's 75 (does the board take STEPS?), then the six
# steps' 20, 17 and 4 x 14, pipelined in one batch).
@pytest.mark.parametrize(
    "faults,check",
    [
        # A damaged frame in a batch: the board's flush after it takes the frames behind it.
        ({"write_faults": {4: "flip", 7: "drop", 10: "truncate"}}, "board errors"),
        # A frame the board never saw: it refuses the steps behind it (out of sequence).
        ({"write_faults": {4: "unsync"}}, "board errors"),
        # The RESET response and the last step's: the reset is sent again, the step's response
        # asked for again (LAST).
        ({"read_faults": {27, 196}}, "last"),
        # A step's response lost behind which more steps ran: reset, the steps run again.
        ({"read_faults": {145}}, "replay"),
    ],
)
def test_driver_recovers_from_damaged_bytes(faults, check):
    net = small_network(8)
    plan = compile_network(net, 2)
    spikes = random_spikes(np.random.default_rng(8), net, 6, activity=0.5)
    port = FaultyPort(SimulatedBoard(plan, steps=False), **faults)  # STEP frames
    driver = HostDriver(port)
    _assert_same(driver.run(spikes, plan), run_network(net, spikes))
    assert port.injected == len(next(iter(faults.values()))) and driver.recovered >= 1
    status = driver.status()
    assert status["timestep"] == 6
    if check == "board errors":
        assert status["crc_errors"] + status["timeouts"] + status["errors"] >= 1
    elif check == "last":
        assert p.CMD_LAST in port.codes and port.codes.count(p.CMD_RESET) == 2
    else:
        assert port.codes.count(p.CMD_RESET) == 2 and port.codes.count(p.CMD_STEP) == 12


def test_driver_gives_up_with_one_line():
    plan = compile_network(small_network(9), 1)
    port = FaultyPort(SimulatedBoard(plan), write_faults={n: "flip" for n in range(3)})
    driver = HostDriver(port, retries=2)
    with pytest.raises(
        HostLinkError,
        match=r"^host link: command 0x02 failed after 3 attempts "
        r"\(board answered error 4: wrong payload length\)$",
    ):
        driver.status()  # the flipped bit is in LEN
    assert driver.status()["errors"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_random_faults_soak(seed):
    # Random damage in both directions over whole runs, loads included.
    rng = np.random.default_rng(100 + seed)
    net = small_network(100 + seed, max_size=6, recurrent=bool(seed % 2))
    other = relayout_variant(net, seed)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    spikes = random_spikes(rng, net, 6, activity=0.5)
    kinds = ["flip", "drop", "truncate"]
    write_faults = {
        int(n): kinds[int(rng.integers(3))] for n in rng.choice(60, size=6, replace=False)
    }
    read_faults = {int(n) for n in rng.choice(500, size=6, replace=False)}
    port = FaultyPort(SimulatedBoard(plan), write_faults, read_faults)
    driver = HostDriver(port)
    _assert_same(driver.run(spikes, plan), run_network(net, spikes))
    driver.load(other_plan)
    _assert_same(driver.run(spikes, other_plan), run_network(other, spikes))
    assert port.injected > 0


def _per_neuron_net(v_th, shift):
    """Input 4 -> LIF 5 with per-neuron v_th, v_rest and decay (the decays fix the layout)."""
    rng = np.random.default_rng(11)
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 12,
            "w_width": 6,
            "populations": [
                {"name": "x", "kind": "input", "size": 4},
                {
                    "name": "h",
                    "kind": "lif",
                    "size": 5,
                    "v_th": [v_th + 9 * j for j in range(5)],
                    "v_reset": 0,
                    "v_rest": [shift * (j - 2) for j in range(5)],
                    "v_peak": 2000,
                    "t_ref": 0,
                    "decay": [[2] if j % 2 else [3, -5] for j in range(5)],
                    "reset_mode": "subtract",
                    "bias": 1,
                },
            ],
            "projections": [
                {"from": "x", "to": "h", "weights": rng.integers(0, 31, (4, 5)).tolist()},
            ],
        }
    )


def _assert_loads_at_runtime(net, other, plan, other_plan, spikes):
    """``other_plan`` loads over ``plan`` through CFG frames (the same layout: no rebuild), and
    the board then runs ``other`` as its golden model does, which differs from ``net``'s."""
    assert plan.layout_hash() == other_plan.layout_hash()
    golden, golden_other = run_network(net, spikes), run_network(other, spikes)
    assert (golden.spikes["h"] != golden_other.spikes["h"]).any()
    driver = HostDriver(SimulatedBoard(plan))
    _assert_same(driver.run(spikes, plan), golden)
    driver.load(other_plan)
    _assert_same(driver.run(spikes, other_plan), golden_other)


def test_runtime_load_of_per_neuron_parameters():
    """Per-neuron thresholds and rests load through CFG frames (the bias words carry them)."""
    net, other = _per_neuron_net(40, 3), _per_neuron_net(20, -4)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    spikes = random_spikes(np.random.default_rng(12), net, 8, activity=0.5)
    _assert_loads_at_runtime(net, other, plan, other_plan, spikes)


def test_runtime_load_of_runtime_decays():
    """Past DECAY_TREES_MAX distinct decays the bias words carry the shift terms: other
    per-neuron decays load through CFG frames without a rebuild."""
    net = many_decays_network(8)
    d = net.to_dict()
    d["populations"][1]["decay"] = distinct_decays(8, offset=30)
    other = Network.from_dict(d)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    assert plan.runtime_decay and plan.decay_sets != other_plan.decay_sets
    spikes = random_spikes(np.random.default_rng(13), net, 4, activity=0.5)
    _assert_loads_at_runtime(net, other, plan, other_plan, spikes)


def test_identity_apart_from_the_spike_ram():
    """Over 256 LIF neurons, the identity past the spike entries would take their RAM past
    the power of two of words they round up to (480 + 69 > 512): it is a memory of its own
    (``CommandExecutor._collect``), and IDENTIFY, STEPS and STEP read as before."""
    net = capacity_network(480)
    plan = compile_network(net, 4)
    assert 480 + struct.calcsize(p.IDENTITY_FORMAT) > 512
    spikes = random_spikes(np.random.default_rng(5), net, 3, activity=0.5)
    driver = HostDriver(SimulatedBoard(plan))
    assert driver.check_plan(plan)["network_hash"] == net.network_hash()
    golden = run_network(net, spikes)
    _assert_same(driver.run(spikes), golden)
    _assert_same(HostDriver(SimulatedBoard(plan, steps=False)).run(spikes, plan), golden)
    assert _fired(golden) > 0
