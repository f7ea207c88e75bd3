"""InstructionForm1: structured output against a JSON schema or a pydantic model
(quartermaster 0.7's node), the validated answer in ``data["parsed"]``."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from qm_nodes_llm.json_check import schema_problems
from qm_nodes_llm.nodes.base import Binding, LLMExecutor, NodeFailure, NodePlan, Problems
from qm_nodes_llm.prompt import ask, prompt
from qm_nodes_llm.types import JsonSchema
from quartermaster_engine import ExecutionContext, NodeResult
from quartermaster_graph import GraphNode, GraphSpec


@dataclass(frozen=True)
class FormPlan:
    schema: dict[str, Any]
    model: type[BaseModel] | None
    memory_key: str

    def question(self) -> str:
        return (
            "Answer with a JSON object that fits this JSON schema, and nothing else:\n"
            + json.dumps(self.schema, ensure_ascii=False)
        )


def import_model(path: str) -> type[BaseModel]:
    """The pydantic model ``module:QualName`` names; ValueError saying why not."""
    module_name, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise ValueError(f"{path!r} is not a pydantic model")
    return target


class InstructionFormExecutor(LLMExecutor[FormPlan]):
    """InstructionForm1: the model answers with a JSON object that must fit metadata
    ``schema`` (a JSON schema), validated by the pydantic model metadata
    ``schema_model`` names (``module:QualName``, written by the builder's
    ``instruction_form(schema=Model)``) when set, else by the schema itself. The
    parsed object is ``data["parsed"]`` and the output its JSON; with metadata
    ``memory_key`` it is also written to flow memory. An answer that does not fit
    fails the node naming every problem, so the node's error strategy applies."""

    node_type = "InstructionForm1"

    def plan(self, node: GraphNode, graph: GraphSpec, problems: Problems) -> FormPlan | None:
        schema = node.metadata.get("schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.add("metadata 'schema' must be a JSON schema of an object (type: object)")
            return None
        model_path = problems.text(node.metadata, "schema_model")
        memory_key = problems.text(node.metadata, "memory_key")
        model: type[BaseModel] | None = None
        if model_path:
            try:
                model = import_model(model_path)
            except ValueError as exc:
                problems.add(f"metadata 'schema_model': {exc}")
                return None
        return FormPlan(schema, model, memory_key)

    def parse(self, own: FormPlan, text: str) -> dict[str, Any]:
        """The answer as a JSON object that fits, or `NodeFailure` naming the problems."""
        try:
            data = json.loads(text)
        except ValueError:
            raise NodeFailure(f"the model's answer is not JSON: {text[:200]!r}") from None
        if own.model is not None:
            try:
                return own.model.model_validate(data).model_dump(mode="json")
            except ValidationError as exc:
                found = [
                    f"{'.'.join(str(p) for p in e['loc']) or '(answer)'}: {e['msg']}"
                    for e in exc.errors()
                ]
        else:
            found = schema_problems(data, own.schema)
            if not found:
                return dict(data)
        raise NodeFailure(f"the model's answer does not fit the schema: {'; '.join(found)}")

    async def run(
        self, context: ExecutionContext, plan: NodePlan[FormPlan], binding: Binding
    ) -> NodeResult:
        own = plan.own
        assert own is not None
        messages = ask(prompt(context), own.question())
        request = self.request(plan, binding, messages, json_schema=JsonSchema("form", own.schema))
        response = await self.call(context, binding, request)
        parsed = self.parse(own, response.text)
        data: dict[str, Any] = {"parsed": parsed, "llm": self.llm_data(binding, response)}
        if own.memory_key:
            data["memory_updates"] = {own.memory_key: parsed}
        return NodeResult(output_text=json.dumps(parsed, ensure_ascii=False), data=data)
