"""quartermaster_engine: the execution engine for agent graphs."""

__version__ = "0.2.0"
