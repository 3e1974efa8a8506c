"""Integrations with peer libraries' own models: what tfbench does to a model built elsewhere.

- ``spikingjelly``: ``accelerate(model)`` (SpikingJelly neurons fused in place) and SpikingJelly's
  model zoo as harness architectures (``--arch sj:spiking_resnet18``, ...).

Each integration imports its library only when used.
"""
