"""`spikeforge demo --network conv`: the shipped conv classifier on the RTL, bit-exact with the
golden model (the array walks its kernel, ``docs/array.md``, "Convolutions"), with board figures
from its shipped iCEBreaker build report."""

import json

from spikeforge.cli.main import main
from spikeforge.sim.rtl import require_or_skip


def test_demo_conv_runs_bit_exact_on_rtl(tmp_path, capsys):
    require_or_skip("icarus")
    argv = ["demo", "--network", "conv", "--backend", "icarus", "--digits", "2"]
    assert main([*argv, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    figures = json.loads((tmp_path / "demo.json").read_text())
    assert figures["network"] == "conv" and figures["digits"] == 2
    assert figures["bit_exact"] and figures["bit_exact_digits"] == 2
    assert figures["accuracy_rtl"] == figures["accuracy_golden"]
    assert "bit-exact with the golden model on 2/2 digits" in out
    # Board figures projected from the shipped iCEBreaker build report of the conv network.
    assert figures["board"] == "icebreaker" and figures["dsps"] == 0
    assert figures["inferences_per_second"] > 0
