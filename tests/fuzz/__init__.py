"""Fuzzing of the input surfaces: the wire envelope decoder, the control API,
the Raft message decoder and the topology loader (``python -m tests.fuzz``)."""
