"""The hooks this pack declares, for other packages to add LLM providers and agent tools.

Implement them in a plugin module (entry-point group ``quartermaster``) like any core hook::

    from quartermaster_engine.plugins import hookimpl
    from qm_nodes_llm import function_tool

    @hookimpl
    def qm_register_llm_providers(register):
        register("acme", create_acme_provider, config_model=AcmeSettings)

    @hookimpl
    def qm_register_llm_tools(register):
        register("get_weather", function_tool(get_weather))

The registrations are read with ``load_plugins().registry("llm_provider")`` and
``registry("llm_tool")``; ``qm plugins`` lists them.
"""

from __future__ import annotations

from quartermaster_engine.plugins import Register, hookspec


@hookspec
def qm_register_llm_providers(register: Register) -> None:
    """Register LLM providers: ``register(name, factory, config_model=..., description=...)``.

    ``factory(settings)`` returns an object with the `qm_nodes_llm.LLMProvider`
    methods (``name``, ``describe()``, ``default_model()``, ``async complete(request,
    on_token, cancelled)``); ``settings`` comes from ``providers.<name>`` of an LLM node
    type's settings (``[nodes."Instruction1".providers.<name>]``).
    """


@hookspec
def qm_register_llm_tools(register: Register) -> None:
    """Register tools Agent1 nodes may call: ``register(name, factory, config_model=...)``.

    ``factory(settings)`` returns a `qm_nodes_llm.Tool` (or a plain function, turned
    into one from its signature); ``settings`` comes from ``tools.<name>`` of the
    Agent1 settings. `qm_nodes_llm.function_tool(fn)` makes a factory of a function.
    """
