"""Reconciliation: the passes that converge Valkey, Docker and LiveKit when hints are lost.

``plan`` decides (pure), ``containers`` converges Docker with Valkey, ``container_events``
follows the engine's events between passes, ``livekit`` converges presence, ghosts and
ingresses with LiveKit, and ``loops`` runs them all as named, guarded background tasks.
"""
