"""Stacks: a Compose file's services deployed, updated and removed together."""
