"""``python -m tfbench``: the same as the ``tfbench`` command."""

from .cli.main import main

if __name__ == "__main__":
    main()
