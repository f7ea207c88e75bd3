"""The builder's node methods that pick, join or loop: decisions, switches, merges,
breaks, Back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from quartermaster_graph.building.core import ChainCore
from quartermaster_graph.building.making import llm_metadata, normalize_cases
from quartermaster_graph.enums import NodeType


class ControlNodes(ChainCore):
    """Node methods of nodes that pick a branch, join branches or loop; branches
    themselves start with ``on()``/``branch()`` (`Chain`)."""

    def decision(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        prefix_message: str = "",
        suffix_message: str = "",
        options: list[str] | None = None,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Decision1 node: the LLM picks one branch; add them with ``on(option)``."""
        meta = llm_metadata(model, provider, temperature, system_instruction, stream=False)
        meta["prefix_message"] = prefix_message
        meta["suffix_message"] = suffix_message
        meta["options"] = list(options or [])
        return self._add(NodeType.DECISION, name, meta, kwargs, llm=True)

    def static_decision(self, name: str, expression: str = "", **kwargs: Any) -> Self:
        """A StaticDecision1 node: an expression picks the branch, no LLM."""
        return self._add(NodeType.STATIC_DECISION, name, {"expression": expression}, kwargs)

    def user_decision(self, name: str, **kwargs: Any) -> Self:
        """A UserDecision1 node: the user picks the branch (``on(label)`` per choice)."""
        return self._add(NodeType.USER_DECISION, name, {}, kwargs)

    def if_node(self, name: str, expression: str = "", **kwargs: Any) -> Self:
        """An If1 node: ``expression`` picks ``on("true")`` or ``on("false")``."""
        return self._add(NodeType.IF, name, {"if_expression": expression}, kwargs)

    def switch(
        self,
        name: str,
        cases: Sequence[Mapping[str, Any]] | Mapping[str, str] | None = None,
        default: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Switch1 node: the first case whose expression holds picks its branch.

        ``cases`` is ``[{"label": ..., "expression": ...}]`` or ``{label: expression}``;
        ``default`` labels the branch taken when no case holds. Branches: ``on(label)``.
        """
        default = kwargs.pop("default_edge_id", default)  # 0.1.5's name
        meta = {"cases": normalize_cases(cases), "default": default}
        return self._add(NodeType.SWITCH, name, meta, kwargs)

    def merge(
        self,
        name: str = "Merge",
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        prefix_message: str = "Compress following conversations into one",
        suffix_message: str = "",
        **kwargs: Any,
    ) -> Self:
        """A Merge1 node (AwaitAll). Without ``model``, ``provider`` and
        ``system_instruction`` the engine joins the closed branches' texts, one per
        line in the order of the incoming edges (no LLM, no plugin); with any of them
        the LLM pack combines them (``prefix_message``, ``suffix_message``)."""
        meta = llm_metadata(model, provider, temperature, system_instruction)
        meta["prefix_message"] = prefix_message
        meta["suffix_message"] = suffix_message
        return self._add(NodeType.MERGE, name, meta, kwargs, llm=True)

    def static_merge(self, name: str = "Merge", text: str = "", **kwargs: Any) -> Self:
        """A StaticMerge1 node (AwaitAll): joins the closed branches without an LLM."""
        return self._add(NodeType.STATIC_MERGE, name, {"static_text": text}, kwargs)

    def break_node(
        self, name: str = "Break", targets: list[str] | None = None, **kwargs: Any
    ) -> Self:
        """A Break1 node: stops collecting earlier messages (``targets``: [], ["tools"], ...)."""
        return self._add(NodeType.BREAK, name, {"break_targets": list(targets or [])}, kwargs)

    def back(self, name: str = "Back", max_iterations: int | None = None, **kwargs: Any) -> Self:
        """A Back1 node: the flow loops back to Start from here, at most
        ``max_iterations`` times (else the runner's visit limit); in a sub-graph it
        returns to the parent graph instead, with what reached it. Nothing can follow
        it on this chain."""
        meta: dict[str, Any] = {}
        if max_iterations is not None:
            if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
                raise ValueError(f"back('{name}'): max_iterations must be an int >= 1")
            if max_iterations < 1:
                raise ValueError(f"back('{name}'): max_iterations must be an int >= 1")
            meta["max_iterations"] = max_iterations
        self._add(NodeType.BACK, name, meta, kwargs)
        self._tail, self._fork, self._fork_kind = None, None, None
        return self
