"""Pre-built graphs for common agent shapes (quartermaster-graph 0.1.5's ``Templates``).

Each template is built with `GraphBuilder` and validated; LLM nodes take ``model``
(empty: the LLM pack's configured default).
"""

from __future__ import annotations

from collections.abc import Sequence

from quartermaster_graph.builder import GraphBuilder
from quartermaster_graph.models import GraphSpec


class Templates:
    """Factories of common graphs; every method returns a validated `GraphSpec`."""

    @staticmethod
    def simple_chat(
        name: str = "Simple Chat Agent",
        model: str = "",
        system_instruction: str = "You are a helpful assistant.",
    ) -> GraphSpec:
        """Start -> Instruction "Process" -> User "User Input" -> End."""
        return (
            GraphBuilder(name)
            .start()
            .instruction("Process", model=model, system_instruction=system_instruction)
            .user("User Input")
            .end()
            .build()
        )

    @staticmethod
    def decision_tree(
        name: str = "Decision Tree",
        question: str = "What should we do?",
        options: Sequence[str] = ("Yes", "No"),
        model: str = "",
    ) -> GraphSpec:
        """Start -> Decision ``question`` -> one Instruction "Handle: <option>" per
        option, each ending in its own End."""
        builder = GraphBuilder(name).start().decision(question, options=list(options))
        for option in options:
            builder.on(option).instruction(f"Handle: {option}", model=model).end()
        return builder.build()

    @staticmethod
    def multi_step(
        name: str = "Multi-Step Agent",
        steps: Sequence[str] = ("Analyze", "Process", "Summarize"),
        model: str = "",
    ) -> GraphSpec:
        """Start -> one Instruction per step, in order -> End."""
        builder = GraphBuilder(name).start()
        for step in steps:
            builder.instruction(step, model=model)
        return builder.end().build()

    @staticmethod
    def parallel_processing(
        name: str = "Parallel Processing",
        branches: Sequence[str] = ("Branch A", "Branch B", "Branch C"),
        model: str = "",
    ) -> GraphSpec:
        """Start -> Parallel -> one Instruction per branch, all running -> StaticMerge
        "Merge" (waits for every branch) -> End.

        0.1.5 drew this with a Decision node, so only one branch ran; this one runs
        them all, as its name says."""
        builder = GraphBuilder(name).start().parallel()
        for branch in branches:
            builder.branch().instruction(branch, model=model).end()
        return builder.static_merge("Merge").end().build()

    @staticmethod
    def multi_agent_supervisor(
        name: str = "Multi-Agent Supervisor",
        worker_names: Sequence[str] = ("Researcher", "Writer", "Coder"),
        model: str = "",
    ) -> GraphSpec:
        """Start -> Instruction "Supervisor" -> Decision "Assign to" -> one specialist
        Instruction per worker (edge labelled with its name), each ending in its own End."""
        builder = (
            GraphBuilder(name)
            .start()
            .instruction(
                "Supervisor",
                model=model,
                system_instruction=(
                    "You are a supervisor. Analyze the task and decide which "
                    "specialist should handle it."
                ),
            )
            .decision("Assign to", options=list(worker_names))
        )
        for worker in worker_names:
            builder.on(worker).instruction(
                worker, model=model, system_instruction=f"You are a specialist {worker.lower()}."
            ).end()
        return builder.build()
