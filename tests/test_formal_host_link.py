# amaranth: UnusedElaboratable=no
# (The argument checks raise before a harness is elaborated.)
"""Proofs of the host link's receiver (SymbiYosys + yices) and a planted bug for each property.

``HostLinkHarness`` (``spikeforge.sim.formal_host_link``; see ``docs/verification.md``): a
``HostLink`` of a one-neuron network, timeout 16, under free input bytes and UART errors, a
consumer that stalls ``tx`` up to 2 cycles, and a free-timing model of the array. ``live`` (no
wedge) and ``recover`` (a request after garbage and a quiet line is executed) are proven by
k-induction of length 3, for every reachable state. The planted bugs, monkeypatched into the
receiver's module (``hdl/host_link_rx.py``), are bounded checks with only the claims asserted,
so that the failure is a claim, not a helper invariant.

The harness builds the link with STEPS as boards do (frames of bitmaps run; none of index
lists runs: assumed), and without.
``StepsHarness`` (``spikeforge.sim.formal_host_link_steps``): the link with STEPS sent one
STEPS frame from reset, or free input; bounded checks (BMC) of the frame's run and answers and
of STEPS safety claims, and a planted sender bug (the executor's state machines monkeypatched
through ``hdl/host_link_exec.py``'s ``OneHotFSM``). Default run about 3.3 minutes on two cores.
"""

import types

import pytest
from amaranth.hdl import Assert, Fragment, Signal
from formal_checks import assert_fails_with_trace, assert_passes

import spikeforge.hdl.host_link_exec as host_link_exec
import spikeforge.hdl.host_link_rx as host_link_rx
from spikeforge.hdl.host_link_fsm import OneHotFSM
from spikeforge.sim.formal import prove
from spikeforge.sim.formal_host_link import PROPERTIES, HostLinkHarness, failed_assertions
from spikeforge.sim.formal_host_link_steps import STEPS_REQUESTS, StepsHarness
from spikeforge.spec import protocol

# --- the properties hold -------------------------------------------------------------------


@pytest.mark.parametrize("steps", [True, False], ids=["steps", "no_steps"])
def test_no_wedge(formal, tmp_path, steps):
    # The link as boards build it (with STEPS, those of bitmaps running) and without STEPS.
    harness = HostLinkHarness(check=["live"], steps=steps)
    # Without STEPS: every response, the longest (IDENTIFY, 75 bytes at up to 4 cycles each)
    # included, and a UART error left pending behind it. With STEPS: a frame of 255 steps,
    # each run and answered one after the other (104 cycles a step and its response).
    assert harness.quiet_bound == (26576 if steps else 356)
    assert_passes(prove(harness, "live", mode="prove", depth=3, build_dir=tmp_path))


@pytest.mark.parametrize(
    "gap, steps",
    [
        # With STEPS runs in it, gap 0 takes about 40 s: --slow.
        pytest.param(0, True, id="0-steps", marks=pytest.mark.slow),
        pytest.param(0, False, id="0-no_steps"),
        pytest.param(15, True, id="15-steps"),
        pytest.param(15, False, id="15-no_steps"),
    ],
)
def test_request_recovers(formal, tmp_path, gap, steps):
    # gap 0: bytes back to back (one waits for LEN_CHECK); gap 15: just under the timeout.
    harness = HostLinkHarness(check=["recover"], gap=gap, steps=steps)
    assert harness.accept_bound == {0: 9, 15: 98}[gap]
    assert_passes(prove(harness, f"recover{gap}", mode="prove", depth=3, build_dir=tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("steps, depth", [(True, 8), (False, 3)], ids=["steps", "no_steps"])
def test_no_wedge_under_other_bounds(formal, tmp_path, steps, depth):
    # Stalls of 5 cycles on tx and spike_in, a slow step and reset, a timeout of 40. With
    # STEPS the induction needs length 8 (at 3 it starts from an input FIFO whose contents
    # no trace wrote: `end` at its head with an event behind it).
    harness = HostLinkHarness(
        check=["live"],
        timeout=40,
        tx_stall=5,
        in_stall=5,
        done_within=20,
        reset_within=20,
        steps=steps,
    )
    assert_passes(prove(harness, "live_wide", mode="prove", depth=depth, build_dir=tmp_path))


# --- each property catches a planted bug ---------------------------------------------------


def test_live_catches_a_timer_that_cannot_time_out(formal, tmp_path, monkeypatch):
    # The byte timer one bit too narrow (Signal(range(timeout)) instead of range(timeout + 1)):
    # it never equals the timeout, so a frame that stops arriving holds the receiver forever.
    def narrow(*args, src_loc_at=0, **kwargs):
        signal = Signal(*args, src_loc_at=src_loc_at + 1, **kwargs)
        narrowed = getattr(signal, "name", None) == "timer"
        return Signal(len(signal) - 1, name="timer") if narrowed else signal

    monkeypatch.setattr(host_link_rx, "Signal", narrow)
    harness = HostLinkHarness(check=["live"], invariants=False)
    result = prove(harness, "live_bug", mode="bmc", depth=20, build_dir=tmp_path)
    assert_fails_with_trace(result, tmp_path)
    assert failed_assertions(result) == {"live: rank did not fall"}


def test_request_alone_is_accepted(formal, tmp_path):
    # The check below without the bug: a request right after reset passes.
    harness = HostLinkHarness(check=["recover"], garbage=False, quiet=1, gap=0, invariants=False)
    assert_passes(prove(harness, "request", mode="bmc", depth=14, build_dir=tmp_path))


def test_recover_catches_a_wrong_crc_start(formal, tmp_path, monkeypatch):
    # The receiver starts each frame's CRC from 0, not 0xFFFF: every request is refused.
    bad = types.SimpleNamespace(**{name: getattr(protocol, name) for name in protocol.__all__})
    bad.CRC_INIT = 0
    monkeypatch.setattr(host_link_rx, "p", bad)
    harness = HostLinkHarness(check=["recover"], garbage=False, quiet=1, gap=0, invariants=False)
    result = prove(harness, "recover_bug", mode="bmc", depth=14, build_dir=tmp_path)
    assert_fails_with_trace(result, tmp_path)
    assert failed_assertions(result) == {"recover: not accepted in time"}


# --- STEPS: bounded -------------------------------------------------------------------------


def test_steps_frame_runs_and_is_answered(formal, tmp_path):
    # Two steps as index lists (the second step runs while the first is answered, its record
    # waits in the record register), with no stalls, to keep the depth down.
    request_name = "lists2"
    harness = StepsHarness(request_name, tx_stall=0, in_stall=0, done_within=1)
    assert harness.depth == 107
    result = prove(
        harness, f"steps_{request_name}", mode="bmc", depth=harness.depth, build_dir=tmp_path
    )
    assert_passes(result)


@pytest.mark.slow
@pytest.mark.parametrize("request_name", ["bitmaps", "lists", "bitmaps2", "lists2"])
def test_steps_frame_under_default_bounds(formal, tmp_path, request_name):
    # Under the default bounds: a consumer stalling up to 1 cycle, the array's input stalling
    # 1, `done` up to 4 cycles after `end`.
    harness = StepsHarness(request_name)
    assert (
        harness.depth == {"bitmaps": 82, "lists": 83, "bitmaps2": 142, "lists2": 140}[request_name]
    )
    result = prove(
        harness, f"steps_{request_name}", mode="bmc", depth=harness.depth, build_dir=tmp_path
    )
    assert_passes(result)


def _stick_the_sender(monkeypatch):
    """Plant a bug: the sender of STEPS responses never goes from R_SEND back to R_IDLE."""

    class Stuck(OneHotFSM):
        def goto(self, name):
            if not (self.here == "R_SEND" and name == "R_IDLE"):
                super().goto(name)

    monkeypatch.setattr(host_link_exec, "OneHotFSM", Stuck)


def test_steps_catches_a_sender_that_never_returns(formal, tmp_path, monkeypatch):
    # The sender of STEPS responses stays in R_SEND after its response is out: the record of
    # the next step is never taken, the frame never done.
    _stick_the_sender(monkeypatch)
    harness = StepsHarness("bitmaps", tx_stall=0, in_stall=0, done_within=1)
    result = prove(harness, "steps_bug", mode="bmc", depth=harness.depth, build_dir=tmp_path)
    assert_fails_with_trace(result, tmp_path)
    assert failed_assertions(result) == {"steps: not done in time"}


def test_no_wedge_induction_catches_a_sender_that_never_returns(formal, tmp_path, monkeypatch):
    # The same bug under the "live" proof, whose induction now runs STEPS frames: it fails
    # in its induction step (status UNKNOWN: no trace from reset is that short), on the
    # invariants that tie the sender to the transmitter: the sender is still in R_SEND with
    # the response out. The bounded check above shows the wedge it leads to.
    _stick_the_sender(monkeypatch)
    harness = HostLinkHarness(check=["live"])
    result = prove(harness, "live_steps_bug", mode="prove", depth=3, build_dir=tmp_path)
    assert result.status == "UNKNOWN"
    assert result.counterexample is not None and "induct" in result.counterexample.name
    assert failed_assertions(result) == {"inv: sending", "inv: transmitter"}


@pytest.mark.slow
def test_steps_bound_is_not_vacuous(formal, tmp_path):
    # The claim at `bound` fails 8 cycles earlier: traces that run the whole frame exist, and
    # the bound is within 8 cycles of the slowest.
    harness = StepsHarness("bitmaps", tx_stall=0, in_stall=0, done_within=1)
    harness.bound -= 8
    result = prove(harness, "steps_early", mode="bmc", depth=harness.bound + 1, build_dir=tmp_path)
    assert_fails_with_trace(result, tmp_path)
    assert failed_assertions(result) == {"steps: not done in time"}


def test_steps_safety_under_free_input(formal, tmp_path):
    # Any bytes, UART errors and timesteps: the safety claims hold for 28 cycles from reset,
    # deep enough for a STEPS frame of one step (12 bytes) to be received, checked, started
    # and its answer begun (R_SEND is first reached at cycle 26).
    harness = StepsHarness(None)
    assert_passes(prove(harness, "steps_free", mode="bmc", depth=28, build_dir=tmp_path))


def test_free_input_reaches_a_steps_run(formal, tmp_path):
    # That check is not vacuous: the free input starts a STEPS step by cycle 17.
    class Reach(StepsHarness):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += Assert(~self.link.executor.probes["state"]["S_READ"], "reach")
            return m

    result = prove(Reach(None), "steps_reach", mode="bmc", depth=18, build_dir=tmp_path)
    assert_fails_with_trace(result, tmp_path)
    assert failed_assertions(result) == {"reach"}


def test_steps_harness_rejects_bad_arguments():
    with pytest.raises(
        TypeError,
        match=r"^request must be None or one of bitmaps, lists, bitmaps2, lists2, not 'x'$",
    ):
        StepsHarness("x")
    with pytest.raises(TypeError, match=r"^tx_stall must be an integer in \[0, 255\], not -1$"):
        StepsHarness(tx_stall=-1)
    assert set(STEPS_REQUESTS) == {"bitmaps", "lists", "bitmaps2", "lists2"}


def test_steps_harness_asserts_its_claims():
    safety = [
        "steps: start before the check",
        "steps: run for another timestep",
        "steps: two headers",
        "steps: ring overflow",
    ]
    harness = StepsHarness()
    Fragment.get(harness, None)
    assert harness.asserted == [
        "steps: error frame",
        *safety,
        "steps: too many",
        "steps: not done in time",
    ]
    free = StepsHarness(None)
    Fragment.get(free, None)
    assert free.asserted == safety and free.depth is None


def test_harness_rejects_bad_arguments():
    with pytest.raises(
        TypeError,
        match=r"^check must name some of live, recover, "
        r"not \('wedge',\)$",
    ):
        HostLinkHarness(check=["wedge"])
    with pytest.raises(ValueError, match=r"^gap must be below the timeout 16, not 16$"):
        HostLinkHarness(gap=16)
    with pytest.raises(TypeError, match=r"^steps must be True or False, not 1$"):
        HostLinkHarness(steps=1)
    with pytest.raises(TypeError, match=r"^quiet must be a positive integer, not 0$"):
        HostLinkHarness(quiet=0)
    with pytest.raises(TypeError, match=r"^tx_stall must be an integer in \[0, 255\], not -1$"):
        HostLinkHarness(tx_stall=-1)


@pytest.mark.parametrize("check", [[name] for name in PROPERTIES])
def test_harness_asserts_what_it_checks(check):
    # Elaborated without a solver: the claims of the property checked are asserted, those of
    # the other are not ("recover" includes "live", which its induction needs), and the
    # invariants only with `invariants`.
    harness = HostLinkHarness(check=check)
    Fragment.get(harness, None)
    kinds = {message.split(":")[0] for message in harness.asserted}
    assert kinds == ({"live", "inv"} if check == ["live"] else {"live", "inv", "recover", "seq"})
    assert "live: not idle after the quiet bound" in harness.asserted
    assert ("recover: not accepted in time" in harness.asserted) == (check == ["recover"])
    bare = HostLinkHarness(check=check, invariants=False)
    Fragment.get(bare, None)
    assert set(bare.asserted) == {
        message for message in harness.asserted if message.startswith(("live:", "recover:"))
    }
