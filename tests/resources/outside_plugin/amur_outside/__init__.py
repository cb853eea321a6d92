"""An Amur plugin from outside: a connector, a stage between two topics and a sink with a table."""
