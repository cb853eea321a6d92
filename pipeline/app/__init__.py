"""The composition root: the ``amur`` command, the roles it runs, and one-off commands.

The only layer that builds concrete connectors, stages and sinks, always through
:mod:`pipeline.core.registry`, from what the configuration names.
"""
