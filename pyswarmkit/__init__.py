"""pyswarmkit: an orchestration engine after SwarmKit."""

__version__ = "0.1.0"
