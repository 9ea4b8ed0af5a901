"""The pusher lifecycle (docs/architecture.md, flows 1 and 2): state in Valkey, pushers on a
runtime seen through its port (``domain/runtime.py``); what to do about the holder of a
pusher's name, and the generation fence, decided in ``placement.py``."""
