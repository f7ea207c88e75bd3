"""What an executor returned, checked before the scheduler acts on it.

An executor returns a `NodeResult` (or a ``str``, its output text). A result
whose fields have the wrong types (``NodeResult(data="x")``,
``NodeResult(output_text=123)``) fails the node with a `NodeError` naming the
node and the field; the node's error strategy then applies. The check is a few
type tests per node, no validation library.

An executor that raises `asyncio.CancelledError` when nobody cancelled its flow
(no ``stop()``, no cancelled caller) has failed: `cancelled_by_executor` tells
the two apart and `spurious_cancel` is that failure.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from quartermaster_engine.nodes import NodeResult
from quartermaster_engine.runner.compiled import CNode
from quartermaster_engine.runner.errors import NodeError

_OPTIONAL_TEXT = ("error", "picked_node", "output_text", "user_prompt")
_FLAGS = ("success", "wait_for_user")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(result: NodeResult) -> str | None:
    """The first field of ``result`` whose type is wrong, described; None if none is."""
    for name in _FLAGS:
        value = getattr(result, name)
        if type(value) is not bool:
            return f"{name} is {type(value).__name__} ({_shown(value)}); expected a bool"
    if type(result.data) is not dict and not isinstance(result.data, dict):
        value = result.data
        return f"data is {type(value).__name__} ({_shown(value)}); expected a dict"
    for name in _OPTIONAL_TEXT:
        value = getattr(result, name)
        if value is not None and not isinstance(value, str):
            return f"{name} is {type(value).__name__} ({_shown(value)}); expected a str or None"
    options = result.user_options
    if options is not None and (
        not isinstance(options, list) or not all(isinstance(o, str) for o in options)
    ):
        return f"user_options is {_shown(options)}; expected a list of str or None"
    return None


#: The exact types a text field of a result usually has (others are checked in full).
_TEXT_TYPES = frozenset((str, type(None)))


def checked(result: NodeResult, cnode: CNode) -> NodeResult:
    """``result`` if its fields have the documented types; else a `NodeError` naming
    the node and the field."""
    # The usual result in one expression; anything else (subclasses of str or dict
    # too) is looked at field by field.
    if (
        type(result.success) is bool
        and type(result.wait_for_user) is bool
        and type(result.data) is dict
        and type(result.output_text) in _TEXT_TYPES
        and type(result.error) in _TEXT_TYPES
        and type(result.picked_node) in _TEXT_TYPES
        and type(result.user_prompt) in _TEXT_TYPES
        and result.user_options is None
    ):
        return result
    problem = _problem(result)
    if problem is None:
        return result
    raise NodeError(f"node {cnode.describe()} returned a NodeResult whose {problem}")


async def coerce(result: Any, cnode: CNode) -> NodeResult:
    """An executor's return value other than a `NodeResult` (an awaitable, a ``str``,
    a `NodeResult` subclass) as a checked `NodeResult`."""
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, NodeResult):
        return checked(result, cnode)
    if isinstance(result, str):
        return NodeResult(success=True, output_text=result)
    raise NodeError(
        f"the executor of node {cnode.describe()} returned {type(result).__name__}; "
        "expected a NodeResult or a str"
    )


def cancelled_by_executor() -> bool:
    """Whether a `CancelledError` just caught came from the executor itself: the task
    running the node was not asked to cancel (``Task.cancelling()`` is 0)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def spurious_cancel(cnode: CNode) -> NodeResult:
    """The failure of a node whose executor raised `CancelledError` on its own."""
    return NodeResult(
        success=False,
        error=(
            f"node {cnode.describe()}: its executor raised CancelledError, but the flow "
            "was not stopped"
        ),
    )
