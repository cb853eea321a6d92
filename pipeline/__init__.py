"""Amur's runtime: settings, message contracts, transports, stages and the CLI."""
