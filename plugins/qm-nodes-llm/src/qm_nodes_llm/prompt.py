"""From the runner's input messages to a provider prompt.

The prompt is ``context.messages``: the node's input messages built by the runner
from its ThoughtType and MessageType and already cut to ``llm_max_input_tokens``.
Two rules make it a usable chat prompt:

- **System messages**: only the node's own instruction is kept (the first message
  when the node has one). Histories inherited from earlier nodes carry *their*
  system instructions; sending them would give the model several conflicting roles.
- **The input text**: when the node's ThoughtType carries no history (NewThought1
  and its variants, SkipThought1) and the prompt has no user message (the
  builder's ``instruction()`` defaults, NewThought1 + Assistant, give only the
  system instruction), the node's input text (``context.input_text``: what its
  predecessors delivered) is added as the user message. Nodes that carry history
  (InheritThought1, ContinueThought1, UsePreviousThought1, ...) get exactly the
  history the runner built, cut to ``llm_max_input_tokens``.

The input text added this way is not cut by the runner. It is also not part of the
node's recorded history: a later ContinueThought1 node sees the node's system
instruction and answer, not that text. To keep the flow's input in the
conversation, give the first LLM node ``message_type: User``.
"""

from __future__ import annotations

from qm_nodes_llm.types import ChatMessage, Role
from quartermaster_engine import ExecutionContext, Message, MessageRole, ThoughtType

_ROLES: dict[MessageRole, Role] = {
    MessageRole.SYSTEM: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    # Engine histories keep tool traffic as text; replayed as plain turns.
    MessageRole.TOOL_CALL: "assistant",
    MessageRole.TOOL_RESULT: "user",
}


#: ThoughtTypes whose input messages include predecessors' histories.
HISTORY_THOUGHTS = frozenset(
    {
        ThoughtType.INHERIT,
        ThoughtType.CONTINUE,
        ThoughtType.APPEND,
        ThoughtType.EDIT_SAME,
        ThoughtType.EDIT_OR_NEW,
        ThoughtType.USE_PREVIOUS,
    }
)


def own_instruction(context: ExecutionContext) -> str:
    """The node's system instruction (``llm_system_instruction`` or ``system_instruction``)."""
    meta = context.current_node.metadata
    return str(meta.get("llm_system_instruction") or meta.get("system_instruction") or "")


def chat_message(message: Message) -> ChatMessage:
    images = message.metadata.get("images") if message.metadata else None
    return ChatMessage(
        role=_ROLES.get(message.role, "user"),
        content=message.content,
        name=message.name,
        images=[str(i) for i in images] if isinstance(images, list) else [],
    )


def conversation(context: ExecutionContext) -> list[ChatMessage]:
    """The node's input messages without inherited system instructions."""
    instruction = own_instruction(context)
    out: list[ChatMessage] = []
    for index, message in enumerate(context.messages):
        if message.role is MessageRole.SYSTEM:
            if index == 0 and instruction and message.content == instruction:
                out.append(chat_message(message))
            continue
        out.append(chat_message(message))
    return out


def prompt(context: ExecutionContext) -> list[ChatMessage]:
    """The prompt of an instruction-like node (see the module's rules)."""
    messages = conversation(context)
    carries_history = context.current_node.thought_type in HISTORY_THOUGHTS
    if not carries_history and not any(m.role == "user" for m in messages):
        messages.append(ChatMessage("user", context.input_text))
    return messages


def ask(messages: list[ChatMessage], question: str) -> list[ChatMessage]:
    """``messages`` with ``question`` as the last user turn: appended to a final user
    message (small models follow one turn better than two), else a new one."""
    if messages and messages[-1].role == "user" and not messages[-1].tool_call_id:
        last = messages[-1]
        text = f"{last.content}\n\n{question}" if last.content else question
        return [*messages[:-1], ChatMessage("user", text, name=last.name, images=last.images)]
    return [*messages, ChatMessage("user", question)]


def system_then(context: ExecutionContext, user_text: str) -> list[ChatMessage]:
    """The node's own instruction (if any) and one user message."""
    instruction = own_instruction(context)
    head = [ChatMessage("system", instruction)] if instruction else []
    return [*head, ChatMessage("user", user_text)]


def transcript(messages: list[ChatMessage]) -> str:
    """A conversation as ``role: text`` lines, for nodes that work on it as a whole."""
    return "\n".join(f"{m.role}: {m.content}" for m in messages if m.role != "system")
