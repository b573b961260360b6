"""Kubernetes resource quantities (`500m`, `1Gi`, `2`) as exact numbers, and back (pure).

As `k8s.io/apimachinery/pkg/api/resource/quantity.go` reads them: decimal SI suffixes
(m, k, M, G, T, P, E), binary ones (Ki ... Ei) and exponents (`1e3`).
"""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIX = {
    "": Fraction(1),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][-+]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$")


class QuantityError(ValueError):
    pass


def parse(text: str | int | float) -> Fraction:
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        return value * Fraction(10) ** int(exponent[1:])
    return value * _SUFFIX[suffix or ""]


def format_quantity(value: Fraction, binary: bool) -> str:
    """A canonical-looking form: `500m`, `2`, `1Gi` (binary for memory-like resources)."""
    if value.denominator == 1:
        number = value.numerator
        if binary:
            for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
                unit = _SUFFIX[suffix].numerator
                if number and number % unit == 0:
                    return f"{number // unit}{suffix}"
        return str(number)
    milli = value * 1000
    if milli.denominator == 1:
        return f"{milli.numerator}m"
    return str(float(value))


def is_binary(resource: str) -> bool:
    return resource.rsplit(".", 1)[-1] in {"memory", "storage", "ephemeral-storage"}
