"""Assertions on SymbiYosys results and on harnesses, shared by the formal test files."""

import re

from amaranth.back import rtlil


def assert_passes(result):
    assert result.status == "PASS", f"{result.name}: {result.status}\n{result.log_tail()}"
    assert result.counterexample is None


def assert_fails_with_trace(result, build_dir):
    """The proof failed and left its counterexample as a VCD under ``build_dir``."""
    assert result.status == "FAIL", f"{result.name}: {result.status}\n{result.log_tail()}"
    vcd = result.counterexample
    assert vcd is not None and vcd.is_relative_to(build_dir) and vcd.suffix == ".vcd"
    assert "$enddefinitions" in vcd.read_text()


def assertion_messages(design):
    """The messages of the ``Assert``\\ s in ``design``'s RTLIL, as sby gets them, in order."""
    text = rtlil.convert(design, name="top", emit_src=False)
    messages = []
    for cell in re.findall(r"^ *cell \$check .*\n((?:.*\n)*?) *end\n", text, re.MULTILINE):
        flavor = re.search(r'parameter \\FLAVOR "(\w+)"', cell).group(1)
        if flavor == "assert":
            messages.append(re.search(r'parameter \\FORMAT "(.*)"', cell).group(1))
    return messages
