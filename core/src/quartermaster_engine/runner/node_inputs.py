"""What an activation receives: input text, predecessor outputs, input messages,
and the history its record carries on."""

from __future__ import annotations

from quartermaster_engine.context.node_execution import NodeExecution
from quartermaster_engine.messaging.context_manager import ContextManager
from quartermaster_engine.messaging.history import MessageLog
from quartermaster_engine.messaging.inputs import input_message
from quartermaster_engine.runner.compiled import (
    THOUGHT_CONTINUE,
    THOUGHT_INHERIT,
    THOUGHT_SKIP,
    CompiledGraph,
)
from quartermaster_engine.runner.map_state import item_text
from quartermaster_engine.runner.state import FlowState
from quartermaster_engine.stores.records import Activation, ActivationKey
from quartermaster_engine.types import Message, MessageRole, MessageType


class NodeInputs:
    """Builds each activation's inputs from its delivering records and flow state."""

    __slots__ = ("cg", "context_manager", "state")

    def __init__(
        self, compiled: CompiledGraph, state: FlowState, context_manager: ContextManager
    ) -> None:
        self.cg = compiled
        self.state = state
        self.context_manager = context_manager

    def input_text(self, act: Activation) -> str:
        """The delivered outputs joined with newlines (the flow input at the start;
        a map's item for the node it maps)."""
        if act.cnode.item_of is not None:
            return item_text(self.state, act)
        sources = act.sources
        if not sources:
            return self.state.input if act.cnode.is_start else ""
        if len(sources) == 1:
            return sources[0].result or ""
        return "\n".join(s.result for s in sources if s.result)

    def predecessor_outputs(self, act: Activation) -> dict[str, str]:
        by_id = self.cg.by_id
        outputs: dict[str, str] = {}
        for src in act.sources:
            cnode = by_id.get(src.node_id)
            name = cnode.name if cnode is not None and cnode.name else str(src.node_id)
            outputs[name] = src.result or ""
        return outputs

    def parts(
        self, act: Activation
    ) -> tuple[list[Message | MessageLog], list[ActivationKey], Message | None]:
        """(parts of the input history, history parents, the pinned input message)."""
        cnode = act.cnode
        parts: list[Message | MessageLog] = []
        parents: list[ActivationKey] = []
        mode = cnode.thought_mode
        if mode != THOUGHT_SKIP:
            if cnode.system_instruction:
                parts.append(Message(MessageRole.SYSTEM, cnode.system_instruction))
            if mode == THOUGHT_INHERIT:
                for src in act.sources:
                    last = src.log.last() if src.log is not None else None
                    if last is not None:
                        parts.append(last)
            elif mode == THOUGHT_CONTINUE:
                for src in act.sources:
                    if src.log is not None and src.log.size:
                        parts.append(src.log)
                        parents.append((src.node_id, src.visit))
        answer = act.user_input
        msg_type = cnode.message_type
        pinned: Message | None = None
        if msg_type is not MessageType.AUTOMATIC:
            user_text = answer if answer is not None else self.state.input
            pinned = input_message(msg_type, cnode.metadata, user_text, self.state.memory)
            if pinned is not None:
                parts.append(pinned)
        if answer is not None and msg_type is not MessageType.USER:
            pinned = Message(MessageRole.USER, answer)
            parts.append(pinned)
        return parts, parents, pinned

    def messages(self, act: Activation) -> list[Message]:
        """The node's input messages, cut to the context window."""
        parts, _, pinned = self.parts(act)
        messages = MessageLog(tuple(parts)).to_list()
        node_limit = act.cnode.metadata.get("llm_max_input_tokens")
        return self.context_manager.truncate(
            messages, pinned, max_tokens=int(node_limit) if node_limit else None
        )

    def attach_history(self, act: Activation, rec: NodeExecution, with_output: bool) -> None:
        """Attach the activation's input history parts to its record. The start node's
        output is the person's input, so it enters histories as a user message."""
        role = None
        if with_output:
            role = MessageRole.USER if act.cnode.is_start else MessageRole.ASSISTANT
        if act.cnode.plain_input and act.user_input is None:
            rec._set_history((), (), role)
            return
        parts, parents, _ = self.parts(act)
        rec._set_history(tuple(parts), tuple(parents), role)
