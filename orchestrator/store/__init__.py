"""Valkey adapter: key names, Lua scripts and the typed stores built on them."""
