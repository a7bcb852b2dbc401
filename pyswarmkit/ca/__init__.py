"""The swarm's certificate authority: X.509 identities carrying CurveZMQ keys,
join tokens, the node's identity on disk, and who may send what."""
