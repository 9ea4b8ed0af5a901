"""CCTV camera-to-LiveKit ingest orchestrator."""

__version__ = "0.1.0"
