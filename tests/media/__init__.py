"""Media-path test doubles: camera simulator, WHIP receiver, loopback lab."""
