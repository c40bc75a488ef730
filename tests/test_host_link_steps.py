"""STEPS (host-link protocol version 4): many timesteps a frame, streamed step responses.

Frames against the golden model through :class:`SimulatedBoard` (``HostLink`` at byte level in
Amaranth's simulator): both input encodings, several frames pipelined, the reported-population
filter, feed-forward and recurrent networks; the overlap of a step with the previous step's
answer, by the board's cycles; every error path of a STEPS frame. Runtime about 25 s.
"""

import numpy as np
import pytest
from host_link_cases import FaultyPort, small_network
from network_cases import random_spikes

from spikeforge.boards.host import HostDriver, HostLinkError, SimulatedBoard
from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.sim.network_golden import run_network
from spikeforge.spec import protocol as p
from spikeforge.spec.errors import SpikeforgeError

STEPS_RESPONSE = p.RESPONSE | p.CMD_STEPS


def _responses(board, n):
    """The next ``n`` response frames from the board, as (code, payload)."""
    decoder = p.FrameDecoder()
    frames = []
    silent = 0  # reads without a byte: a long frame flushed after its header was refused
    while len(frames) < n:
        data = board.read(1)
        silent = 0 if data else silent + 1
        assert silent < 4, f"no response from the board after {len(frames)} of {n}"
        frames += decoder.feed(data)
    return frames


def _golden_numbers(plan, golden, t, report):
    """The neuron numbers of step ``t``'s spikes in the populations ``report``, sorted."""
    numbers, first = [], 0
    for number, population in enumerate(plan.populations):
        if population.is_input:
            continue
        if number in report:
            numbers += [first + int(i) for i in np.flatnonzero(golden.spikes[population.name][t])]
        first += population.size
    return sorted(numbers)


def _steps_of(spikes):
    return [[int(i) for i in np.flatnonzero(row)] for row in spikes]


# --- protocol ------------------------------------------------------------------------------------


def test_steps_encoding_round_trips():
    steps = [[0, 3, 9], [], [10]]
    for lists in (False, True):
        payload = p.encode_steps(0x10005, steps, 11, 3, [1, 2], lists)
        assert payload[:4] == bytes([5, 0, 3, lists])  # timestep's low 16 bits, steps, flags
        assert payload[4] == 0b110  # the report mask
        assert p.decode_steps(payload, 11, 3) == (5, steps, [1, 2], lists)
    # Bitmaps: 2 bytes a step for 11 inputs; lists: 2 bytes an index and 2 the end mark.
    assert len(p.encode_steps(0, steps, 11, 3, [], False)) == 5 + 3 * 2
    assert len(p.encode_steps(0, steps, 11, 3, [], True)) == 5 + 2 * (4 + 3)
    assert p.steps_entries(steps, 11, True) == 7 and p.steps_entries(steps, 11, False) == 6
    assert p.decode_steps_response(bytes([7, 1, 2, 3, 5, 0, 0x34, 0x12])) == (
        7,
        0x030201,
        [5, 0x1234],
    )
    with pytest.raises(
        p.FrameError, match=r"^steps response has 5 bytes, expected 4 \+ 2 per spike$"
    ):
        p.decode_steps_response(bytes(5))
    with pytest.raises(SpikeforgeError, match=r"^a STEPS frame carries 1 to 255 steps, not 0$"):
        p.encode_steps(0, [], 4, 1, [], False)
    with pytest.raises(p.FrameError, match=r"^steps payload holds 1 steps, not 2$"):
        p.decode_steps(bytes([0, 0, 2, 0, 0, 1]), 4, 1)


# --- through the simulated board -----------------------------------------------------------------


@pytest.mark.parametrize("recurrent", [False, True])
def test_steps_frames_equal_the_golden_model(recurrent):
    net = small_network(31 + recurrent, recurrent=recurrent)
    plan = compile_network(net, 2)
    spikes = random_spikes(np.random.default_rng(5), net, 9, activity=0.4)
    golden = run_network(net, spikes)
    board = SimulatedBoard(plan)
    identity = HostDriver(board).identify()
    assert identity["steps_buffer"] == 512 and identity["version"] == 4
    n_in, pops = plan.n_inputs, len(plan.populations)
    lif = [n for n, q in enumerate(plan.populations) if not q.is_input]
    steps = _steps_of(spikes)
    # Three frames sent back to back: bitmaps, lists, bitmaps; the last reports one population.
    frames = [(0, 4, False, lif), (4, 7, True, lif), (7, 9, False, lif[-1:])]
    for first, end, lists, report in frames:
        board.write(
            p.encode_frame(
                p.CMD_STEPS, p.encode_steps(first, steps[first:end], n_in, pops, report, lists)
            )
        )
    answers = _responses(board, 9)
    for t, (code, payload) in enumerate(answers):
        report = next(r for first, end, _, r in frames if first <= t < end)
        timestep, cycles, numbers = p.decode_steps_response(payload)
        assert code == STEPS_RESPONSE and timestep == t + 1 and cycles > 0
        assert sorted(numbers) == _golden_numbers(plan, golden, t, report), t
    status = HostDriver(board).status()
    assert status["timestep"] == 9 and status["cycles"] == cycles
    # LAST after STEPS: the last step's head, no spikes.
    board.write(p.encode_frame(p.CMD_LAST))
    assert _responses(board, 1) == [
        (p.RESPONSE | p.CMD_STEP, cycles.to_bytes(4, "little") + (9).to_bytes(4, "little"))
    ]


def test_run_by_steps_and_reported_populations():
    net = small_network(33)
    plan = compile_network(net, 1)
    spikes = random_spikes(np.random.default_rng(6), net, 12, batch=2, activity=0.3)
    golden = run_network(net, spikes)
    port = FaultyPort(SimulatedBoard(plan))
    driver = HostDriver(port)
    run = driver.run(spikes, plan)
    assert set(run.spikes) == set(golden.spikes)
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)
    assert p.CMD_STEP not in port.codes and port.codes.count(p.CMD_STEPS) == 2
    last = plan.lif_populations[-1].name
    only = driver.run(spikes, plan, populations=[last])
    assert list(only.spikes) == [last]
    np.testing.assert_array_equal(only.spikes[last], golden.spikes[last])
    np.testing.assert_array_equal(only.cycles, run.cycles)
    with pytest.raises(
        SpikeforgeError, match=r"^populations must name LIF populations of the network \(.*\), "
    ):
        driver.run(spikes, plan, populations=["nope"])


def test_driver_packs_frames_and_chooses_the_encoding():
    identity = {"steps_buffer": 512, "n_inputs": 64, "populations": 3}
    dense = [list(range(0, 64, 4))] * 100  # 16 of 64 inputs: 8 bytes of bitmap, 34 of list
    sparse = [[5]] * 100  # 1 of 64: 4 bytes of list
    # 245 bytes of inputs fit half the receive buffer with the frame and its head.
    assert HostDriver._pack(dense, 0, 255, identity) == (30, False)
    assert HostDriver._pack(sparse, 0, 255, identity) == (61, True)
    assert HostDriver._pack(sparse, 90, 4, identity) == (4, True)
    wide = {"steps_buffer": 4096, "n_inputs": 4096, "populations": 1}
    with pytest.raises(HostLinkError, match=r"^host link: step 0 has 300 input spikes, more "):
        HostDriver._pack([list(range(300))], 0, 255, wide)


def test_steps_overlap_the_answers():
    # Every step's answer is on the line while the next runs: the frame takes fewer cycles
    # than its steps and their answers one after the other.
    net = small_network(34, max_size=24)
    plan = compile_network(net, 1)
    spikes = random_spikes(np.random.default_rng(7), net, 24, activity=0.6)
    board = SimulatedBoard(plan, divisor=4)  # 40 cycles a byte each way
    pops = len(plan.populations)
    lif = [n for n, q in enumerate(plan.populations) if not q.is_input]
    frame = p.encode_frame(
        p.CMD_STEPS, p.encode_steps(0, _steps_of(spikes), plan.n_inputs, pops, lif, False)
    )
    before = board.cycles
    board.write(frame)
    answers = _responses(board, len(spikes))
    elapsed = board.cycles - before
    steps = sum(p.decode_steps_response(data)[1] for _, data in answers)
    line = 40 * sum(6 + len(data) for _, data in answers)
    arrival = 40 * len(frame)
    assert steps > 1000 and line > 1000
    # One after the other they would take at least arrival + steps + line.
    assert elapsed < arrival + line + steps // 2, (elapsed, arrival, steps, line)


def test_steps_resume_after_lost_responses():
    net = small_network(35)
    plan = compile_network(net, 2)
    spikes = random_spikes(np.random.default_rng(8), net, 10, activity=0.5)
    golden = run_network(net, spikes)
    # Bytes of the session: STATUS 25, RESET 6, IDENTIFY 75, then the step responses; a bit
    # flipped in the third step's answer: the steps behind it ran, so the board is reset and
    # runs them again; the STEPS frame's SYNC lost: nothing ran, the frame is sent again.
    for faults in ({"read_faults": {106 + 30}}, {"write_faults": {3: "unsync"}}):
        port = FaultyPort(SimulatedBoard(plan), **faults)
        driver = HostDriver(port)
        run = driver.run(spikes, plan)
        for name in golden.spikes:
            np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)
        assert port.injected == 1 and driver.recovered >= 1
        assert driver.status()["timestep"] == 10
        resets = 2 if "read_faults" in faults else 1
        assert port.codes.count(p.CMD_RESET) == resets and p.CMD_LAST not in port.codes


def test_steps_error_paths():
    net = small_network(36, recurrent=True)
    plan = compile_network(net, 2)
    board = SimulatedBoard(plan)
    n_in, pops = plan.n_inputs, len(plan.populations)
    head = p.steps_head_length(pops)
    width = (n_in + 7) // 8
    assert n_in % 8, "the network needs padding bits in its bitmaps"

    def steps(payload):
        return p.encode_frame(p.CMD_STEPS, payload)

    good = p.encode_steps(0, [[0], [1]], n_in, pops, [], True)
    flipped = bytearray(steps(good))
    flipped[7] ^= 0x01
    pad = bytearray(p.encode_steps(0, [[0]], n_in, pops, [], False))
    pad[-1] |= 0x80
    cases = {
        p.ERR_LENGTH: [steps(good[: head - 1]), steps(bytes(head + 2 * 512 + 1))],
        p.ERR_CRC: [bytes(flipped)],
        p.ERR_PAYLOAD: [
            steps(bytes([0, 0, 0, 0]) + good[4:head]),  # 0 steps
            steps(good[:3] + bytes([0x03]) + good[4:]),  # a flag bit other than bit 0
            steps(p.encode_steps(0, [[n_in]], n_in, pops, [], True)),  # index out of range
            steps(p.encode_steps(0, [[2, 1]], n_in, pops, [], True)),  # not ascending
            steps(p.encode_steps(0, [[1, 1]], n_in, pops, [], True)),  # repeated
            steps(bytes(pad)),  # a bitmap bit past n_inputs
            steps(good[:2] + bytes([3]) + good[3:]),  # fewer steps than said
            steps(good[:2] + bytes([1]) + good[3:]),  # more
            steps(good[:-2]),  # the last list not closed
            steps(good[:-1]),  # half an entry
            steps(bytes([0, 0, 1, 0]) + good[4:head] + bytes(width + 1)),  # part of a bitmap
            # 257 bitmaps in 514 bytes: more entries than the buffer holds
            steps(bytes([0, 0, 255, 0]) + good[4:head] + bytes(514)),
        ],
        p.ERR_SEQUENCE: [steps(p.encode_steps(1, [[0]], n_in, pops, [], True))],
    }
    for error, frames in cases.items():
        for frame in frames:
            board.write(frame)
            assert _responses(board, 1) == [(p.RSP_ERROR, bytes([error, p.CMD_STEPS]))], (
                error,
                frame.hex(),
            )
    status = HostDriver(board).status()
    assert status["timestep"] == 0
    # Nothing ran: the network still runs exactly as the golden model.
    spikes = random_spikes(np.random.default_rng(9), net, 5, activity=0.5)
    run = HostDriver(board).run(spikes, plan)
    golden = run_network(net, spikes)
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)


def test_run_populations_option_names_lif_populations(tmp_path, capsys):
    inputs = tmp_path / "in.npy"
    np.save(inputs, np.zeros((3, 64), np.uint8))
    status = main(
        [
            "run",
            "cli/data/digits_net.json",
            "--board",
            "icebreaker",
            "--port",
            str(tmp_path / "no-such-port"),
            "--input",
            str(inputs),
            "-o",
            str(tmp_path / "out.npz"),
            "--populations",
            "output,pixels",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        "spikeforge: error: --populations must name LIF populations of the network (hidden, output), "
        "not 'pixels'\n"
    )


def test_steps_buffer_overflow_is_refused():
    # 17 inputs: 3 bytes a bitmap; 171 steps take 513 entries, one past the buffer, and the
    # frame is refused though its step count matches.
    net = small_network(45)
    plan = compile_network(net, 1)
    board = SimulatedBoard(plan)
    n_in, pops = plan.n_inputs, len(plan.populations)
    width = (n_in + 7) // 8
    steps = -(-513 // width)
    assert steps * width > 512 and steps <= 255, (n_in, steps)
    payload = p.encode_steps(0, [[0]] * steps, n_in, pops, [], False)
    board.write(p.encode_frame(p.CMD_STEPS, payload))
    assert _responses(board, 1) == [(p.RSP_ERROR, bytes([p.ERR_PAYLOAD, p.CMD_STEPS]))]
    assert HostDriver(board).status()["timestep"] == 0


def _lif(name, size, bias):
    return {
        "name": name,
        "kind": "lif",
        "size": size,
        "v_th": 4,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 32767,
        "t_ref": 0,
        "decay": [2],
        "reset_mode": "zero",
        "bias": bias,
    }


def test_a_step_waits_for_room_in_the_ring():
    # Every neuron spikes every step and each answer takes far longer than a step at bit
    # level: a step starts only once the ring has room for all its spikes, so the array is
    # never held off on `spike_out` and nothing is lost.
    net = Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inputs", "kind": "input", "size": 4},
                _lif("a", 12, 20),
                _lif("b", 12, 0),
            ],
            "projections": [
                {"from": "inputs", "to": "a", "weights": [[1] * 12] * 4},
                {"from": "a", "to": "b", "weights": [[10] * 12] * 12},
            ],
        }
    )
    plan = compile_network(net, 1)
    spikes = (np.random.default_rng(1).random((6, 4)) < 0.5).astype(np.uint8)
    golden = run_network(net, spikes)
    assert all(int(s.sum()) == s.size for s in golden.spikes.values())
    board = SimulatedBoard(plan, divisor=4)
    out = board.link.array.spike_out
    held = []

    async def watch(ctx):
        while True:
            _, _, ready, valid = await ctx.tick().sample(out.ready, out.valid)
            held.append(valid and not ready)

    board._sim.add_testbench(watch, background=True)
    run = HostDriver(board).run(spikes, plan)
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)
    assert len(held) > 5000 and not any(held)
