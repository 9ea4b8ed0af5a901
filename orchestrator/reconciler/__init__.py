"""Background loops: named, guarded tasks with a run-once mode for tests."""
