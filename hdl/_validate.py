"""Parameter checks in a component's ``__init__``."""

from contextlib import contextmanager

__all__ = ["validating"]


@contextmanager
def validating(component):
    """Run parameter checks; a component they reject is not reported as created-but-unused.

    Amaranth warns about every elaboratable that is never elaborated, including one whose
    ``__init__`` raised: that warning would follow the one-line error the user already got.
    """
    try:
        yield
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise
