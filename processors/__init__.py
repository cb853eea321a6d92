"""Processors: entities, figures and the Russia–China cooperation classifier."""
