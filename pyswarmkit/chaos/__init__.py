"""A seeded chaos harness for whole swarms: ``python -m pyswarmkit.chaos``."""
