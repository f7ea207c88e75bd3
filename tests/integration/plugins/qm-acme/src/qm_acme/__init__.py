"""A third-party plugin: a node type, a dispatcher and an event sink."""
