"""SpikingJelly 2.0's models on tfbench: ``accelerate`` (accelerate.py) and its model zoo (zoo.py)."""

from .accelerate import AccelerationReport, Decision, accelerate

__all__ = ["AccelerationReport", "Decision", "accelerate"]
