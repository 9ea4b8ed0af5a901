"""LiveKit adapter: tokens, rooms, ingress, webhooks."""
