"""The ground floor: message contracts, settings, transports, storage and the bases every
plugin builds on (connectors, stages, sinks). It imports nothing of the floors above."""
