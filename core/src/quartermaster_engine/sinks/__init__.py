"""Event sinks: where a runner's events go besides ``on_event`` and ``run_async``.

A sink is any object with ``emit(event)`` (and optionally ``close()``). The core
provides `ConsoleSink` (``console``) and `JsonlSink` (``jsonl``); plugins add
more through ``qm_register_event_sinks``. A failing sink is reported once per
flow and never breaks the flow.
"""

from quartermaster_engine.sinks.console import ConsoleSink
from quartermaster_engine.sinks.jsonl import JsonlSink

__all__ = ["ConsoleSink", "JsonlSink"]
