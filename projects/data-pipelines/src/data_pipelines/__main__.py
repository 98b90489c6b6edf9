"""``python -m data_pipelines``: the command line (cli.py)."""

from data_pipelines.cli import main

if __name__ == "__main__":
    main()
