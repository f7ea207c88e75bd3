"""The one set of output-size and work limits of both sandboxes (expressions and
templates).

- A string one operation builds has at most `MAX_TEXT` characters (simpleeval's
  limit on ``+`` and ``*``), whatever builds it: ``+``, ``*``, padding to a width
  (``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``), ``str.join`` and
  ``str.replace``, ``%`` formatting (``"%999999999s" % 1``, Jinja's ``format``
  filter) and, in templates, ``str.format`` (``"{:>999999999}".format(1)``) and
  the filters that take a size (``center``, ``indent``, ``wordwrap``, ``join``,
  ``replace``, ``tojson``). The size is computed, in linear time, before anything
  is built; other filters grow their input by a small factor at most, and their
  results are checked too.
- ``range``, comprehensions and the ``batch`` and ``slice`` filters have at most
  `MAX_ITEMS` items.
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
#: The string methods handed out bounded (`bounded_method`): every one that can
#: build a string longer than its inputs.
GROWING = PADDING | {"join", "replace"}


class LimitExceeded(ValueError):
    """An operation would build more than the sandboxes allow."""


def _too_long(what: str, size: int) -> LimitExceeded:
    return LimitExceeded(f"{what} would build {size:,} characters; the limit is {MAX_TEXT:,}")


def check_size(what: str, size: int) -> None:
    """Refuse an operation that would build ``size`` characters, over `MAX_TEXT`."""
    if size > MAX_TEXT:
        raise _too_long(what, size)


def joined_size(separator: str, items: list[Any]) -> int:
    """How long ``separator.join(items)`` is (non-strings count as 0: join refuses them)."""
    parts = sum(len(item) for item in items if isinstance(item, str))
    return parts + len(separator) * max(len(items) - 1, 0)


def replaced_size(text: str, old: str, new: str, count: int = -1) -> int:
    """How long ``text.replace(old, new, count)`` is."""
    found = text.count(old) if old else len(text) + 1
    if count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _width(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def bounded_method(text: str, method: str) -> Callable[..., str]:
    """``text.<method>`` (one of `GROWING`) that refuses results over `MAX_TEXT`."""
    if method == "join":
        return _bounded_join(text)
    if method == "replace":
        return _bounded_replace(text)
    return _bounded_padding(text, method)


def _bounded_join(separator: str) -> Callable[..., str]:
    def join(iterable: Any) -> str:
        items = list(iterable)
        check_size("str.join", joined_size(separator, items))
        return separator.join(items)

    return join


def _bounded_replace(text: str) -> Callable[..., str]:
    def replace(old: str, new: str, count: int = -1) -> str:
        if isinstance(old, str) and isinstance(new, str) and isinstance(count, int):
            check_size("str.replace", replaced_size(text, old, new, count))
        return text.replace(old, new, count)

    return replace


def _bounded_padding(text: str, method: str) -> Callable[..., str]:
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


# A format specification's numbers: [[fill]align][sign][z][#][0][width][,_][.precision]
_SPEC_NUMBERS = re.compile(r"(\d+)")


def check_percent(fmt: str, args: Any) -> None:
    """Refuse ``fmt % args`` when a width or precision would build over `MAX_TEXT`."""
    values = list(args) if isinstance(args, tuple) else [args]
    position = 0
    for text, width, precision, kind in percent_conversions(fmt):
        if kind == "%":
            continue
        for number in (width, precision):
            if number == "*":
                size = _width(values[position]) if position < len(values) else 0
                position += 1
            else:
                size = _number(number) if number else 0
            if size > MAX_TEXT:
                raise _too_long(f"{text!r} formatting", size)
        position += 1


_FLAGS = frozenset("#0- +")


def percent_conversions(fmt: str) -> Iterator[tuple[str, str | None, str | None, str]]:
    """Each ``%`` conversion of ``fmt`` as (its text, width, precision, type), read as
    Python reads them (``%[(key)][flags][width][.precision][length]type``, nested
    parentheses in the key), in one pass: time linear in ``fmt``'s length (a regular
    expression backtracked between flags and width, quadratic on long digit runs)."""
    end = len(fmt)
    start = fmt.find("%")
    while start != -1:
        i = start + 1
        if i < end and fmt[i] == "(":
            depth, i = 1, i + 1
            while i < end and depth:
                depth += {"(": 1, ")": -1}.get(fmt[i], 0)
                i += 1
            if depth:
                return  # Python refuses it: incomplete format key
        while i < end and fmt[i] in _FLAGS:
            i += 1
        width, i = _count(fmt, i)
        precision = None
        if i < end and fmt[i] == ".":
            precision, i = _count(fmt, i + 1)
        if i < end and fmt[i] in "hlL":
            i += 1
        if i >= end:
            return
        yield fmt[start : i + 1], width, precision, fmt[i]
        start = fmt.find("%", i + 1)


def _count(fmt: str, i: int) -> tuple[str | None, int]:
    """A width or precision at ``i`` (``*`` or ASCII digits) and the index after it."""
    if i < len(fmt) and fmt[i] == "*":
        return "*", i + 1
    first = i
    while i < len(fmt) and "0" <= fmt[i] <= "9":
        i += 1
    return (fmt[first:i] or None), i


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
    # digits is refused by Python itself); leading zeros count for nothing.
    digits = digits.lstrip("0") or "0"
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
