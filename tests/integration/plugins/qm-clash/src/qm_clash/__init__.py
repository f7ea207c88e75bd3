"""A plugin that collides with qm-acme."""
