"""`MessageRouter`: 0.1.5's message-routing API, reading histories from a store.

The runner builds each node's input messages itself, from the histories of
the activations that delivered to it (see `quartermaster_engine.runner`); this
class keeps 0.1.5's methods for code that routes messages by hand.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from quartermaster_engine.messaging.inputs import input_message, system_message
from quartermaster_engine.types import GraphNode, GraphSpec, Message, ThoughtType


class MessageRouter:
    """Builds a node's messages from its predecessors' stored histories."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get_messages_for_node(
        self, flow_id: UUID, node: GraphNode, graph: GraphSpec
    ) -> list[Message]:
        """The node's input history by its ThoughtType (without the input message)."""
        thought = node.thought_type
        if thought == ThoughtType.SKIP:
            return []
        messages: list[Message] = []
        system = system_message(node.metadata)
        if system is not None:
            messages.append(system)
        if thought in (ThoughtType.NEW, ThoughtType.NEW_HIDDEN):
            return messages
        for pred in graph.get_predecessors(node.id):
            history: list[Message] = self._store.get_messages(flow_id, pred.id)
            if not history:
                continue
            if thought == ThoughtType.INHERIT:
                messages.append(history[-1])
            else:
                messages.extend(history)
        return messages

    def save_node_output(self, flow_id: UUID, node_id: UUID, messages: list[Message]) -> None:
        """Store the node's history."""
        self._store.save_messages(flow_id, node_id, messages)

    def append_to_node(self, flow_id: UUID, node_id: UUID, message: Message) -> None:
        """Append one message to the node's history."""
        self._store.append_message(flow_id, node_id, message)

    def build_input_message(
        self, node: GraphNode, user_input: str, memory: dict[str, Any]
    ) -> Message | None:
        """The input message the node's MessageType adds, or None."""
        return input_message(node.message_type, node.metadata, user_input, memory)
