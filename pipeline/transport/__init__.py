"""Transports: the Kafka log and its embedded single-machine twin."""
