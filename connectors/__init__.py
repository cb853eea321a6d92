"""Connectors: poll news sources and turn new items into ``Article`` messages."""
