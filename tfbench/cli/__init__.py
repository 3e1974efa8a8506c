"""The command line: ``tfbench run | compare | layer | plot``, one module per command."""
