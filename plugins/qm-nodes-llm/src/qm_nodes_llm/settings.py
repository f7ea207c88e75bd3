"""Settings of the LLM node executors (``[nodes."<type>"]``) and the ``llm_*`` keys a node's
metadata may carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from qm_nodes_llm.types import THINKING_LEVELS


class LLMNodeSettings(BaseModel):
    """Settings of one LLM node type's executor (``[nodes."Instruction1"]`` in ``qm.toml``).

    ``provider`` / ``model`` apply to nodes that name none (``llm_provider`` /
    ``llm_model``); with ``force_provider`` / ``force_model`` they apply to every node
    (what ``qm run --provider/--model`` and ``run_graph(provider=, model=)`` set).
    ``providers.<name>`` holds each provider's own settings, ``tools.<name>`` each
    agent tool's.
    """

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    model: str | None = None
    force_provider: bool = False
    force_model: bool = False
    #: Defaults for nodes whose metadata does not set them.
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_output_tokens: int | None = Field(default=None, ge=1)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tools: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _config_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_config_dir(self, info: ValidationInfo) -> LLMNodeSettings:
        # Provider settings are validated later, by the provider's own model; relative
        # paths in them must still resolve against the config file's folder.
        context = info.context if isinstance(info.context, dict) else {}
        folder = context.get("config_dir")
        self._config_dir = Path(folder) if folder is not None else None
        return self

    @property
    def config_dir(self) -> Path:
        return self._config_dir if self._config_dir is not None else Path.cwd()


class NodeLLMOptions(BaseModel):
    """The ``llm_*`` metadata of one node, without the prefix (``llm_temperature`` ->
    ``temperature``). Empty ``model`` / ``provider`` mean "not set"."""

    model_config = ConfigDict(extra="forbid")

    model: str = ""
    provider: str = ""
    temperature: float | None = Field(default=None, ge=0, le=2)
    system_instruction: str = ""
    stream: bool = True
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_input_tokens: int | None = Field(default=None, ge=1)
    vision: bool = False
    thinking_level: str = "off"
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None

    @field_validator("model", "provider", "system_instruction", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("stream", "vision", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return info.field_name == "stream"
        return value

    @field_validator("thinking_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if value is None or value is False:
            return "off"
        text = str(value).strip().lower()
        if text not in THINKING_LEVELS:
            raise ValueError(f"must be one of {', '.join(THINKING_LEVELS)}")
        return text

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value


#: Every ``llm_*`` metadata key the LLM nodes read.
LLM_KEYS = tuple(f"llm_{name}" for name in NodeLLMOptions.model_fields)


@dataclass(frozen=True)
class OptionsResult:
    options: NodeLLMOptions
    problems: list[str]


def read_options(metadata: Mapping[str, Any]) -> OptionsResult:
    """The node's ``llm_*`` options, and every problem with them (unknown keys included)."""
    raw = {k[4:]: v for k, v in metadata.items() if isinstance(k, str) and k.startswith("llm_")}
    try:
        return OptionsResult(NodeLLMOptions.model_validate(raw), [])
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = "llm_" + ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(
                    f"metadata {key!r} is not an LLM setting; known: {', '.join(LLM_KEYS)}"
                )
            else:
                problems.append(f"metadata {key!r}: {err['msg']}")
        valid = {k: v for k, v in raw.items() if k in NodeLLMOptions.model_fields}
        try:
            options = NodeLLMOptions.model_validate(valid)
        except ValidationError:
            options = NodeLLMOptions()
        return OptionsResult(options, problems)
