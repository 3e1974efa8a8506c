"""Fused ops. ``jit`` builds and launches the CUDA sources in kernels/; each op has a folder (``lif/``).

The public names are re-exported by the top-level package (``tfbench.lif``, ``tfbench.LIF``); this
package does not re-export them, so that ``tfbench.ops.lif`` stays the op's folder.
"""
