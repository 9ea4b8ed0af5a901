"""The test harness: one way to run the service in-process and one as a subprocess, one set of
constants, one helper for each job.

* :mod:`~tests.harness.constants`: keys, secrets, limits, paths, defined once.
* :mod:`~tests.harness.in_process`: the app in the test's event loop (ASGI) or under uvicorn in
  a thread.
* :mod:`~tests.harness.service`: the real ``serve`` as a subprocess, replicas, the on-call CLI.
* :mod:`~tests.harness.livekit`: the LiveKit wire fake with a service wired to it, signed
  webhooks, viewer tokens.
* :mod:`~tests.harness.http`: the REST calls (auth headers, reserve, release, stats).
* :mod:`~tests.harness.metrics`: ``/metrics`` scraped and read.
* :mod:`~tests.harness.store`: cameras seeded into the registry.
* :mod:`~tests.harness.docker`, :mod:`~tests.harness.images`: the engine, container listings,
  the locally built test images and the sweep of test containers.
* :mod:`~tests.harness.waiting`: polling with a liveness bound.
* :mod:`~tests.harness.fixtures`: all of it as pytest fixtures (a plugin ``tests/conftest.py``
  registers).
"""
