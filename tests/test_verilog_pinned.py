"""The generated Verilog, pinned byte for byte.

A refactoring of the gateware must leave its output unchanged: these digests were taken before
the code was split into layers (docs/architecture.md) and still hold after. A change of the
hardware that is meant changes them, and the commit says why.
"""

import hashlib
from importlib import resources

import pytest

from spikeforge.cli.main import main

PINNED = {
    "core": (
        ["generate", "core"],
        "72a82e47342ba3a96690899f166934465036c03abef6efb34287f48337d85627",
    ),
    "core-decay-3-6": (
        ["generate", "core", "--decay", "3,-6", "--t-ref", "2"],
        "f06f60f60b4198bdf4c1dc66dd02a81a21ae0530d489d52a4416cce0215d0fec",
    ),
    "digits-1-lane": (
        ["generate", "DIGITS", "--lanes", "1"],
        "db4b3b6dcdda1271c62c0bc533c97ccde90574e296238edebefc2ca3a8aa9725",
    ),
    "digits-2-lanes": (
        ["generate", "DIGITS", "--lanes", "2"],
        "d0e84f8efa3ab15f4203eb1421d8b5cc7b84bcdfad38b10671edbe13c3aef068",
    ),
}


@pytest.mark.parametrize("name", PINNED)
def test_verilog_is_pinned(name, tmp_path, capsys):
    args, digest = PINNED[name]
    digits = str(resources.files("spikeforge.cli") / "data" / "digits_net.json")
    out = tmp_path / "out.v"
    assert main([digits if a == "DIGITS" else a for a in args] + ["-o", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
