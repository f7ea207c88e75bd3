"""Widgets for qm-acme."""
