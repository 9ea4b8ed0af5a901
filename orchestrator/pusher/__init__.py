"""The pusher lifecycle of design §4: state in Valkey, containers on the Docker engine."""
