"""The builder's LLM node methods (the LLM pack runs them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel

from quartermaster_graph.building.core import ChainCore
from quartermaster_graph.building.making import INSTRUCTION_FORM, llm_metadata
from quartermaster_graph.enums import NodeType


class LlmNodes(ChainCore):
    """Node methods of LLM nodes: text, summaries, agents, vision, structured output."""

    def instruction(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """An Instruction1 node: LLM text generation without tools (streams)."""
        meta = llm_metadata(model, provider, temperature, system_instruction)
        return self._add(NodeType.INSTRUCTION, name, meta, kwargs, llm=True)

    def summarize(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "Summarize the given conversation concisely.",
        **kwargs: Any,
    ) -> Self:
        """A Summarize1 node: the LLM condenses the conversation."""
        meta = llm_metadata(model, provider, temperature, system_instruction)
        return self._add(NodeType.SUMMARIZE, name, meta, kwargs, llm=True)

    def agent(
        self,
        name: str = "Agent",
        model: str = "",
        provider: str = "",
        system_instruction: str = "",
        tools: list[str] | None = None,
        max_iterations: int = 25,
        temperature: float = 0.5,
        **kwargs: Any,
    ) -> Self:
        """An Agent1 node: an LLM loop that may call ``tools`` up to ``max_iterations`` times."""
        meta = llm_metadata(model, provider, temperature, system_instruction)
        meta["program_version_ids"] = list(tools or [])
        meta["max_iterations"] = max_iterations
        return self._add(NodeType.AGENT, name, meta, kwargs, llm=True)

    def vision(
        self,
        name: str,
        model: str = "",
        provider: str = "",
        system_instruction: str = "",
        temperature: float = 0.5,
        **kwargs: Any,
    ) -> Self:
        """An InstructionImageVision1 node: LLM image analysis."""
        meta = llm_metadata(model, provider, temperature, system_instruction, vision=True)
        return self._add(NodeType.INSTRUCTION_IMAGE_VISION, name, meta, kwargs, llm=True)

    def instruction_form(
        self,
        name: str,
        schema: type[BaseModel] | Mapping[str, Any],
        model: str = "",
        provider: str = "",
        temperature: float = 0.5,
        system_instruction: str = "",
        **kwargs: Any,
    ) -> Self:
        """An InstructionForm1 node: structured output. ``schema`` is a pydantic model
        (its JSON schema is stored, and metadata ``schema_model`` names it as
        ``module:QualName`` so the LLM pack validates with it) or a JSON schema of an
        object. The parsed answer is the node's ``data["parsed"]``."""
        meta = llm_metadata(model, provider, temperature, system_instruction, stream=False)
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            meta["schema"] = schema.model_json_schema()
            meta["schema_model"] = f"{schema.__module__}:{schema.__qualname__}"
        elif isinstance(schema, Mapping):
            meta["schema"] = dict(schema)
        else:
            raise ValueError(
                f"instruction_form('{name}'): schema must be a pydantic model or a JSON "
                f"schema dict, got {type(schema).__name__}"
            )
        return self._add(INSTRUCTION_FORM, name, meta, kwargs, llm=True)
