"""Pure models and decisions. Imports no I/O library."""
