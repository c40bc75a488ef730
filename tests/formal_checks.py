"""Assertions on SymbiYosys results, shared by the formal test files."""


def assert_passes(result):
    assert result.status == "PASS", f"{result.name}: {result.status}\n{result.log_tail()}"
    assert result.counterexample is None


def assert_fails_with_trace(result, build_dir):
    """The proof failed and left its counterexample as a VCD under ``build_dir``."""
    assert result.status == "FAIL", f"{result.name}: {result.status}\n{result.log_tail()}"
    vcd = result.counterexample
    assert vcd is not None and vcd.is_relative_to(build_dir) and vcd.suffix == ".vcd"
    assert "$enddefinitions" in vcd.read_text()
