"""Graph serialization under quartermaster-graph 0.1.5's module path.

The functions live in `quartermaster_graph.files` (which also reads the hand-written
form and reports problems by line); this module re-exports them so that
``from quartermaster_graph.serialization import to_json`` keeps working.
"""

from quartermaster_graph.files import from_json, from_yaml, json_schema, to_json, to_yaml

__all__ = ["from_json", "from_yaml", "json_schema", "to_json", "to_yaml"]
