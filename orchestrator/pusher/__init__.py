"""The pusher lifecycle (docs/architecture.md, flows 1 and 2): state in Valkey, containers
on the Docker engine."""
