"""The names the spans use: OpenTelemetry GenAI semantic conventions, pinned to one version.

The GenAI conventions are still "Development" and change between releases, so the sink
follows one named version, `SEMCONV_VERSION`, and says so in every span's
instrumentation scope (``schema_url``). Attributes of our own use the ``qm.`` prefix.
"""

from __future__ import annotations

#: The semantic conventions release the spans follow.
SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

# -- GenAI (gen_ai.*) ------------------------------------------------------------------

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_SEED = "gen_ai.request.seed"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
ERROR_TYPE = "error.type"

INVOKE_AGENT = "invoke_agent"
CHAT = "chat"
EXECUTE_TOOL = "execute_tool"

# -- Quartermaster (qm.*) --------------------------------------------------------------

FLOW_ID = "qm.flow.id"
FLOW_PARENT_ID = "qm.flow.parent_id"
FLOW_STATUS = "qm.flow.status"
FLOW_RESUMED = "qm.flow.resumed"
FLOW_NODE_RUNS = "qm.flow.usage.node_runs"
FLOW_TOKENS = "qm.flow.usage.tokens"
FLOW_COST = "qm.flow.usage.cost"
FLOW_CURRENCY = "qm.flow.usage.currency"


def key_usage(key: str, field: str) -> str:
    """A budget key's usage attribute on a finished flow's span: ``qm.key.<key>.usage.
    node_runs``, ``.tokens``, ``.cost``, ``.currency`` (totals across flows)."""
    return f"qm.key.{key}.usage.{field}"


NODE_ID = "qm.node.id"
NODE_NAME = "qm.node.name"
NODE_TYPE = "qm.node.type"
NODE_VISIT = "qm.node.visit"
NODE_ATTEMPT = "qm.node.attempt"
NODE_STATUS = "qm.node.status"
NODE_ERROR_STRATEGY = "qm.node.error_strategy"

#: Span events.
EVENT_RETRY = "qm.node.retry"
EVENT_PROGRESS = "qm.node.progress"
EVENT_CUSTOM = "qm.node.custom"
EVENT_USER_INPUT = "qm.node.user_input_required"
EVENT_TIMER_SET = "qm.node.timer_set"
EVENT_CHILD_WAITED = "qm.node.child_flow_waited"
EVENT_TIMER_FIRED = "qm.node.timer_fired"
EVENT_MAP_STARTED = "qm.node.map_started"
EVENT_DEADLINE_PASSED = "qm.node.deadline_passed"
EVENT_REUSED = "qm.node.reused"
EVENT_PAUSED = "qm.flow.paused"
EVENT_RESUMED = "qm.flow.resumed"
EVENT_STOPPED = "qm.flow.stopped"
EVENT_SCHEDULE_FIRED = "qm.flow.schedule_fired"


def agent_span_name(graph_name: str) -> str:
    """``invoke_agent {gen_ai.agent.name}``."""
    return f"{INVOKE_AGENT} {graph_name}" if graph_name else INVOKE_AGENT


def chat_span_name(model: str) -> str:
    """``chat {gen_ai.request.model}``."""
    return f"{CHAT} {model}" if model else CHAT


def tool_span_name(tool: str) -> str:
    """``execute_tool {gen_ai.tool.name}``."""
    return f"{EXECUTE_TOOL} {tool}"


def node_span_name(node_name: str) -> str:
    """``node {name}``: one span per node run."""
    return f"node {node_name}"
