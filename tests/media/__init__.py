"""Media-path test doubles and builders: camera simulator, WHIP receiver, pusher image."""
