"""kTLS device offload on two linked netdevsim ports, checked from inside the guest.

``run.run_cases(specs, nbytes)`` runs cases (``cases.py``) and returns their facts;
``vmtests/test_offload.py`` calls it in the guest through ``ktlskit.hosts.call`` and asserts
on them (``python -m ktlskit.offload CASE...`` prints them). The modules, one concern each:

- ``netns``: sockets and commands inside the two network namespaces;
- ``nsim``: the netdevsim ports, their fault knobs and the counters of both sides;
- ``traffic``: keys for TLS 1.2/1.3, kTLS socket pairs and the traffic patterns;
- ``wire``: capture on the peer port, TCP reassembly, the reference record layer as oracle;
- ``cases``: the cases themselves; ``rekey``, ``rekeyfaults``: those of patches/tls-rekey,
  ``rekeywire`` their wire oracle, ``steer`` hooks into their traffic loops, ``probes``
  the TCP counters and kernel log they read;
- ``run``: the table of cases, their specs, running a list of them.

Only ``keyschedule``/``records``/``uapi`` are used for keys and records: the checks do not
depend on the kTLS socket library they are meant to check.
"""
