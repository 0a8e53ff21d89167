"""kTLS device offload on two linked netdevsim ports, checked from inside the guest.

``python -m ktlskit.offload CASE...`` runs cases (``cases.py``) and prints their facts as
one JSON line; ``vmtests/test_offload.py`` asserts on them. The modules, one concern each:

- ``netns``: sockets and commands inside the two network namespaces;
- ``nsim``: the netdevsim ports, their fault knobs and the counters of both sides;
- ``traffic``: keys for TLS 1.2/1.3, kTLS socket pairs and the traffic patterns;
- ``wire``: capture on the peer port, TCP reassembly, the reference record layer as oracle;
- ``cases``: the cases themselves.

Only ``keyschedule``/``records``/``uapi`` are used for keys and records: the checks do not
depend on the kTLS socket library they are meant to check.
"""
