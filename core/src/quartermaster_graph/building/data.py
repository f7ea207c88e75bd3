"""The builder's node methods for data and memory: static text, templates,
variables, code, programs, memory, comments."""

from __future__ import annotations

from typing import Any, Self

from quartermaster_graph.building.core import ChainCore
from quartermaster_graph.enums import NodeType


class DataNodes(ChainCore):
    """Node methods of nodes that produce or store data without an LLM."""

    def static(self, name: str, text: str = "", **kwargs: Any) -> Self:
        """A Static1 node: outputs ``text`` as it is."""
        return self._add(NodeType.STATIC, name, {"static_text": text}, kwargs)

    def text(self, name: str, template: str = "", **kwargs: Any) -> Self:
        """A Text1 node: renders ``template``."""
        return self._add(NodeType.TEXT, name, {"text": template}, kwargs)

    def var(self, name: str, variable: str = "", expression: str = "", **kwargs: Any) -> Self:
        """A Var1 node: evaluates ``expression`` and stores it as ``variable``."""
        return self._add(NodeType.VAR, name, {"name": variable, "expression": expression}, kwargs)

    def text_to_variable(
        self, name: str, variable: str = "", source: str = "", **kwargs: Any
    ) -> Self:
        """A TextToVariable1 node: stores text output as ``variable``."""
        meta = {"variable": variable, "source": source}
        return self._add(NodeType.TEXT_TO_VARIABLE, name, meta, kwargs)

    def code(self, name: str, code: str = "", filename: str = "", **kwargs: Any) -> Self:
        """A Code1 node: code run by the runtime environment."""
        return self._add(NodeType.CODE, name, {"code": code, "filename": filename}, kwargs)

    def program_runner(self, name: str, program: str = "", **kwargs: Any) -> Self:
        """A ProgramRunner1 node: runs a program or tool."""
        return self._add(NodeType.PROGRAM_RUNNER, name, {"program": program}, kwargs)

    def read_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variable_names: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A ReadMemory1 node: loads ``variable_names`` from memory (``flow`` or ``user``)."""
        meta = _memory(memory_name, memory_type, "variable_names", variable_names)
        return self._add(NodeType.READ_MEMORY, name, meta, kwargs)

    def write_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variables: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A WriteMemory1 node: stores ``variables`` (``[{"name", "expression"}]``)."""
        meta = _memory(memory_name, memory_type, "variables", variables)
        return self._add(NodeType.WRITE_MEMORY, name, meta, kwargs)

    def update_memory(
        self,
        name: str,
        memory_name: str = "",
        memory_type: str = "flow",
        variables: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """An UpdateMemory1 node: updates existing memory ``variables``."""
        meta = _memory(memory_name, memory_type, "variables", variables)
        return self._add(NodeType.UPDATE_MEMORY, name, meta, kwargs)

    def flow_memory(
        self,
        name: str = "Flow Memory",
        memory_name: str = "",
        initial_data: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A FlowMemory1 node: defines flow-scoped memory and its initial data."""
        meta = {"memory_name": memory_name, "initial_data": list(initial_data or [])}
        return self._add(NodeType.FLOW_MEMORY, name, meta, kwargs)

    def user_memory(
        self,
        name: str = "User Memory",
        memory_name: str = "",
        initial_data: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A UserMemory1 node: defines user-scoped memory that outlives flows."""
        meta = {"memory_name": memory_name, "initial_data": list(initial_data or [])}
        return self._add(NodeType.USER_MEMORY, name, meta, kwargs)

    def comment(self, name: str, text: str = "", **kwargs: Any) -> Self:
        """A Comment1 node: documentation only."""
        return self._add(NodeType.COMMENT, name, {"comment": text}, kwargs)


def _memory(
    memory_name: str, memory_type: str, key: str, values: list[Any] | None
) -> dict[str, Any]:
    """The metadata of a node that reads or writes ``memory_name`` (``memory_type``):
    its names or variables under ``key``."""
    return {"memory_name": memory_name, "memory_type": memory_type, key: list(values or [])}
