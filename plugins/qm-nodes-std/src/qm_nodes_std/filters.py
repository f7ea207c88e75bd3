"""Jinja's filters, bounded like every other operation of the sandboxes (`limits`).

The filters that take a size (``center``, ``indent``, ``wordwrap``, ``join``,
``replace``, ``tojson``'s indent, ``batch``, ``slice``) have the size of what they
would build computed first, in linear time, and refused over the limit before
anything is allocated. Every other filter grows its input by a small factor at
most (``escape``, ``tojson``, ``urlencode``): its result is checked, so a chain of
them cannot double its way past the limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Environment, pass_environment, pass_eval_context
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.utils import generate_lorem_ipsum

from qm_nodes_std.limits import (
    MAX_ITEMS,
    LimitExceeded,
    check_size,
    joined_size,
    replaced_size,
)


def bounded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """``filters`` (an environment's) each bounded: sized ones checked before they
    build, every one's string result checked after."""
    sized: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
        "center": _center,
        "indent": _indent,
        "wordwrap": _wordwrap,
        "join": _join,
        "replace": _replace,
        "tojson": _tojson,
        "batch": _items("batch"),
        "slice": _items("slice"),
    }
    bounded: dict[str, Callable[..., Any]] = {}
    for name, original in filters.items():
        wrap = sized.get(name)
        bounded[name] = _checked_result(name, wrap(original) if wrap else original)
    return bounded


def _checked_result(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps Jinja's pass_* marker
    def filtered(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if isinstance(result, str) and len(result) > _longest_text(args, kwargs):
            check_size(f"the {name} filter", len(result))
        return result

    return filtered


def _longest_text(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    return max((len(a) for a in (*args, *kwargs.values()) if isinstance(a, str)), default=0)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _center(original: Callable[..., str]) -> Callable[..., str]:
    def center(value: str, width: int = 80) -> str:
        check_size("the center filter", max(len(str(value)), _int(width)))
        return original(value, width)

    return center


def _indent(original: Callable[..., str]) -> Callable[..., str]:
    def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        step = len(width) if isinstance(width, str) else _int(width)
        text = str(s)
        check_size("the indent filter", max(step, len(text) + (text.count("\n") + 1) * step))
        return original(s, width, first, blank)

    return indent


def _wordwrap(original: Callable[..., str]) -> Callable[..., str]:
    @pass_environment
    def wordwrap(
        environment: Environment,
        s: str,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> str:
        # Wrapped with "\n" first (no longer than the text plus one character a
        # line), then joined with the real wrapstring once its size is known.
        plain: str = original(environment, s, width, break_long_words, "\n", break_on_hyphens)
        joint = environment.newline_sequence if wrapstring is None else str(wrapstring)
        lines = plain.split("\n")
        check_size("the wordwrap filter", len(plain) + (len(lines) - 1) * (len(joint) - 1))
        return joint.join(lines)

    return wordwrap


def _join(original: Callable[..., str]) -> Callable[..., str]:
    @pass_eval_context
    def join(
        eval_ctx: EvalContext, value: Any, d: str = "", attribute: str | int | None = None
    ) -> str:
        items = list(value)
        if attribute is not None:
            items = list(map(make_attrgetter(eval_ctx.environment, attribute), items))
        check_size("the join filter", joined_size(str(d), [str(item) for item in items]))
        return original(eval_ctx, items, d)

    return join


def _replace(original: Callable[..., str]) -> Callable[..., str]:
    @pass_eval_context
    def replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
        size = replaced_size(str(s), str(old), str(new), -1 if count is None else _int(count))
        check_size("the replace filter", size)
        return original(eval_ctx, s, old, new, count)

    return replace


def _tojson(original: Callable[..., str]) -> Callable[..., str]:
    @pass_eval_context
    def tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> str:
        check_size("the tojson filter's indent", _int(indent))
        return original(eval_ctx, value, indent)

    return tojson


def _items(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``batch`` and ``slice``: a count of items (or lists) over `MAX_ITEMS` is refused."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def sized(value: Any, count: int, fill_with: Any = None) -> Any:
            if _int(count) > MAX_ITEMS:
                raise LimitExceeded(
                    f"the {name} filter's count {count:,} is over the limit of {MAX_ITEMS:,}"
                )
            return original(value, count, fill_with)

        return sized

    return wrap


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum`` global, refusing more words than the limit allows."""
    check_size("lipsum", _int(n) * _int(max) * 12)  # a dozen characters a word at most
    return str(generate_lorem_ipsum(n, html, min, max))
