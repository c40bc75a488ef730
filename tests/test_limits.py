"""The shared limits (spec/limits.py): one definition, the same range wherever a value enters."""

import pytest
from amaranth.hdl import Fragment

from spikeforge.gen import network
from spikeforge.gen.network import FORMAT, Network
from spikeforge.hdl.neuron import NeuronCore
from spikeforge.spec.errors import SpikeforgeError
from spikeforge.spec.limits import ACC_WIDTH_RANGE, LANES, check_int, check_lanes


def test_check_int():
    assert check_int("x", 3, 1, 4) == 3
    with pytest.raises(TypeError, match=r"^x must be an integer in \[1, 4\], not 5$"):
        check_int("x", 5, 1, 4)
    with pytest.raises(TypeError, match=r"^x must be an integer in \[0, 1\], not True$"):
        check_int("x", True, 0, 1)
    with pytest.raises(SpikeforgeError, match=r"^--x must be an integer in \[1, 4\], not 0$"):
        check_int("--x", 0, 1, 4, error=SpikeforgeError)


@pytest.mark.parametrize("lanes", LANES)
def test_check_lanes_accepts(lanes):
    assert check_lanes(lanes) == lanes


@pytest.mark.parametrize("lanes", [0, 3, 16, True, "2", 2.0])
def test_check_lanes_refuses(lanes):
    with pytest.raises(TypeError, match=rf"^lanes must be one of 1, 2, 4, 8, not {lanes!r}$"):
        check_lanes(lanes)
    with pytest.raises(SpikeforgeError, match=r"^--lanes must be one of 1, 2, 4, 8, not "):
        check_lanes(lanes, "--lanes", SpikeforgeError)


def _network(**top):
    lif = {"name": "out", "kind": "lif", "size": 1, "v_th": 5, "v_reset": 0, "v_rest": 0}
    lif.update(v_peak=100, t_ref=0, decay=[], reset_mode="zero", bias=0)
    return {
        "format": FORMAT,
        "v_width": 8,
        "w_width": 8,
        "populations": [{"name": "inp", "kind": "input", "size": 4}, lif],
        "projections": [{"from": "inp", "to": "out", "weights": [[-128], [-128], [127], [127]]}],
        **top,
    }


def test_acc_width_limit_is_the_cores():
    # The loader and the neuron core take the same widths.
    lo, hi = ACC_WIDTH_RANGE
    # Elaborated, so that Amaranth does not warn about a component created but never used.
    Fragment.get(NeuronCore(acc_width=hi), None)
    with pytest.raises(TypeError, match=rf"^acc_width must be an integer in \[{lo}, {hi}\]"):
        NeuronCore(acc_width=hi + 1)
    assert Network.from_dict(_network(acc_width=hi)).acc_width == hi
    with pytest.raises(
        SpikeforgeError, match=rf"^acc_width: must be an integer in \[{lo}, {hi}\], not 56$"
    ):
        Network.from_dict(_network(acc_width=56))


def test_implicit_acc_width_beyond_the_core(monkeypatch):
    # Without an explicit acc_width the loader sizes the accumulator from the weights; a
    # network whose sums need more than the core holds is refused there, naming the field.
    # (With the real limit of 48 bits such a network needs terabytes of weights: the limit
    # is lowered to 8 here, and these weight sums need 9 bits.)
    monkeypatch.setattr(network, "ACC_WIDTH_RANGE", (2, 8))
    with pytest.raises(
        SpikeforgeError,
        match=r"^acc_width: the worst-case weight sum range \[-256, 254\] needs 9 bits, the "
        r"neuron core holds at most 8; use fewer or narrower weights$",
    ):
        Network.from_dict(_network())
