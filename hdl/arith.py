"""Adder-only building blocks of the neuron datapath, shared by the core and the array.

Each is a function returning an Amaranth expression, so that the caller decides where the pipeline
registers go. None of them multiplies.
"""

from amaranth.hdl import Mux, Value

__all__ = [
    "saturate",
    "exceeds",
    "reaches",
    "fires",
    "refractory_next",
    "bits_for",
    "ceil_div",
    "mul_const",
    "div_const",
]


def bits_for(n):
    """Bits needed for an unsigned value ``n`` (at least 1)."""
    return max(int(n).bit_length(), 1)


def ceil_div(a, b):
    """``ceil(a / b)`` of integers, exactly (rows of slots, tiles of memory blocks)."""
    return -(-a // b)


def saturate(value, width):
    """Clamp ``value`` to the signed ``width``-bit range and return a ``signed(width)`` value.

    An out-of-range value is clamped instead of wrapping. The range test looks at the bits above
    the result's sign bit (all equal to the sign of ``value`` exactly when it fits), which is a
    few LUTs instead of two comparators' carry chains on the critical path.
    """
    value = Value.cast(value)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    shape = value.shape()
    if shape.width <= width and shape.signed:
        return value.as_signed()
    if shape.signed:
        top = value[width - 1 :]
        fits = top.all() | ~top.any()
        limit = Mux(value[-1], lo, hi)
    else:
        fits = ~value[width - 1 :].any()
        limit = hi
    return Mux(fits, value[:width], limit)[:width].as_signed()


def exceeds(value, threshold):
    """``value`` strictly above ``threshold``: the threshold test of ``docs/neuron.md``."""
    return value > threshold


def reaches(value, threshold):
    """``value`` at or above ``threshold``: the threshold test of ``threshold_compare = ">="``."""
    return value >= threshold


def fires(above, refractory):
    """Spike condition of ``docs/neuron.md``: above threshold (the flag ``above``, from
    :func:`exceeds`) and not refractory."""
    return ~refractory & above


def refractory_next(r, spike, t_ref):
    """Next refractory count: count down while refractory, load ``t_ref`` on a spike, else 0."""
    return Mux(r != 0, r - 1, Mux(spike, t_ref, 0))[: len(r)]


def _csd(constant):
    """Canonical signed-digit expansion of a non-negative integer: ``[(sign, shift), ...]``."""
    digits, shift = [], 0
    while constant:
        if constant & 1:
            digit = 2 - (constant & 3)  # +1 if the next bit is 0, -1 if it is 1
            digits.append((digit, shift))
            constant -= digit
        constant >>= 1
        shift += 1
    return digits


def mul_const(value, constant):
    """``value * constant`` for a non-negative constant, as shifts and adds (canonical signed
    digits), so that synthesis sees adders only and never a ``$mul`` cell.
    """
    if not isinstance(constant, int) or constant < 0:
        raise TypeError(f"constant must be a non-negative integer, not {constant!r}")
    value = Value.cast(value)
    width = value.shape().width + bits_for(constant)
    total = None
    for sign, shift in _csd(constant):
        term = value << shift
        total = (
            term
            if total is None and sign > 0
            else ((0 - term) if total is None else (total + term if sign > 0 else total - term))
        )
    if total is None:
        return Value.cast(0)
    return total[:width] if not value.shape().signed else total[:width].as_signed()


def div_const(value, divisor, max_value):
    """``(value // divisor, value % divisor)`` of an unsigned ``value <= max_value`` by a
    positive constant, with no divider and no multiplier.

    The quotient is ``(value * M) >> k`` with ``M = ceil(2**k / divisor)``, a constant multiply
    (:func:`mul_const`); it is exact for every ``value <= max_value`` because
    ``k = bits(max_value) + bits(divisor)`` makes the error of ``M`` times ``value`` smaller
    than ``2**k``. The remainder is ``value - quotient * divisor``. A power of two is a slice.
    """
    if not isinstance(divisor, int) or divisor < 1:
        raise TypeError(f"divisor must be a positive integer, not {divisor!r}")
    value = Value.cast(value)
    q_width = bits_for(max_value // divisor)
    r_width = bits_for(divisor - 1)
    if divisor & (divisor - 1) == 0:
        shift = divisor.bit_length() - 1
        return value[shift : shift + q_width], value[:shift] if shift else Value.cast(0)
    k = bits_for(max_value) + bits_for(divisor)
    quotient = (mul_const(value, -(-(1 << k) // divisor)) >> k)[:q_width]
    remainder = (value - mul_const(quotient, divisor))[:r_width]
    return quotient, remainder
