"""`spikeforge demo --network conv`: the shipped conv classifier through the golden model.

The array does not walk kernels yet (issue 16, part 3), so the demo reports the golden model's
accuracy and then stops at the compiler's one-line refusal, exit status 2, before any RTL run.
"""

from spikeforge.cli import train_digits_conv
from spikeforge.cli.main import main
from spikeforge.cli.train_digits import load_test_digits, predict


def test_demo_conv_reports_golden_then_refuses_rtl(tmp_path, capsys):
    argv = ["demo", "--network", "conv", "--backend", "icarus", "--digits", "5"]
    assert main([*argv, "-o", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    images, labels = load_test_digits()
    golden = predict(train_digits_conv.shipped_network(), images[:5])
    accuracy = 100 * float((golden == labels[:5]).mean())
    assert f"golden model: accuracy {accuracy:.2f}%" in captured.out
    assert captured.err.strip().splitlines() == [
        "spikeforge: error: projections[0] (pixels -> conv): convolutions and pools have no "
        "hardware yet; this conv2d projection runs in the golden model only "
        "(simulate --backend golden)"
    ]
    assert not (tmp_path / "demo.json").exists()
