"""Filters that plug into the relay pipeline (see ``relay/filters.py`` for the interface)."""
