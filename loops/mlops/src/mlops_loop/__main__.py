"""``python -m mlops_loop``: the command line (cli.py)."""

from mlops_loop.cli import main

if __name__ == "__main__":
    main()
