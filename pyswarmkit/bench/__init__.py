"""``swarmd bench FILE``: scheduler throughput on a live multi-process swarm.

``spec`` reads the file, ``run`` launches and measures, ``agents`` is the
agent host process, ``host`` the actor driving its agents, ``report`` the
figures."""
