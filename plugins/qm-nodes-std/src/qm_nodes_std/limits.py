"""The one set of output-size and work limits of both sandboxes (expressions and
templates).

- A string one operation builds has at most `MAX_TEXT` characters (simpleeval's
  limit on ``+`` and ``*``), whatever builds it: ``+``, ``*``, padding to a width
  (``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``), ``%`` formatting
  (``"%999999999s" % 1``, Jinja's ``format`` filter) and, in templates,
  ``str.format`` (``"{:>999999999}".format(1)``). Widths are checked before
  anything is built.
- ``range`` and comprehensions have at most `MAX_ITEMS` items.
- A template renders at most `MAX_OUTPUT` characters in all (its loops may
  repeat strings of `MAX_TEXT`); rendering stops there.

Breaking one fails the node with `LimitExceeded`, whose message names the
operation and the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import simpleeval  # type: ignore[import-untyped]

#: The longest string one operation may build.
MAX_TEXT: int = simpleeval.MAX_STRING_LENGTH
#: The most items of a range or a comprehension.
MAX_ITEMS: int = simpleeval.MAX_COMPREHENSION_LENGTH
#: The most characters one template renders.
MAX_OUTPUT = 1_000_000

PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class LimitExceeded(ValueError):
    """An operation would build more than the sandboxes allow."""


def _too_long(what: str, size: int) -> LimitExceeded:
    return LimitExceeded(f"{what} would build {size:,} characters; the limit is {MAX_TEXT:,}")


def _width(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def bounded_padding(text: str, method: str) -> Callable[..., str]:
    """``text.<method>`` (a padding method) that refuses results over `MAX_TEXT`."""
    call = getattr(text, method)

    def padded(*args: Any, **kwargs: Any) -> str:
        if method == "expandtabs":
            size = _width(args[0] if args else kwargs.get("tabsize", 8))
            longest = len(text) + text.count("\t") * max(size - 1, 0)
        else:
            longest = max(len(text), _width(args[0] if args else kwargs.get("width", 0)))
        if longest > MAX_TEXT:
            raise _too_long(f"str.{method}({args[0] if args else ''})", longest)
        return call(*args, **kwargs)  # type: ignore[no-any-return]

    return padded


# One % conversion: %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
# A format specification's numbers: [[fill]align][sign][z][#][0][width][,_][.precision]
_SPEC_NUMBERS = re.compile(r"(\d+)")


def check_percent(fmt: str, args: Any) -> None:
    """Refuse ``fmt % args`` when a width or precision would build over `MAX_TEXT`."""
    values = list(args) if isinstance(args, tuple) else [args]
    position = 0
    for match in _PERCENT.finditer(fmt):
        if match.group(3) == "%":
            continue
        for number in (match.group(1), match.group(2)):
            if number == "*":
                size = _width(values[position]) if position < len(values) else 0
                position += 1
            else:
                size = _number(number) if number else 0
            if size > MAX_TEXT:
                raise _too_long(f"{match.group(0)!r} formatting", size)
        position += 1


def safe_mod(left: Any, right: Any) -> Any:
    """``left % right`` with `check_percent` when ``left`` is a string."""
    if isinstance(left, str):
        check_percent(left, right)
    return left % right


def check_format_spec(spec: str) -> None:
    """Refuse a ``str.format`` field whose width or precision exceeds `MAX_TEXT`."""
    for number in _SPEC_NUMBERS.findall(spec):
        size = _number(number)
        if size > MAX_TEXT:
            raise _too_long(f"format specification {spec!r}", size)


def _number(digits: str) -> int:
    # Longer digit strings than any limit are not converted (int() of thousands of
    # digits is refused by Python itself).
    return int(digits) if len(digits) <= 18 else 10**18


def bounded_output(chunks: Iterator[str]) -> str:
    """Join rendered chunks, stopping with `LimitExceeded` past `MAX_OUTPUT`."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise LimitExceeded(
                f"the template renders more than {MAX_OUTPUT:,} characters (the limit)"
            )
        parts.append(chunk)
    return "".join(parts)


def bounded_range(*args: int) -> range:
    """``range`` of at most `MAX_ITEMS` items."""
    result = range(*args)
    if len(result) > MAX_ITEMS:
        raise LimitExceeded(f"range of {len(result):,} items; the limit is {MAX_ITEMS:,}")
    return result
