"""``python -m model_monitoring``: the command line (cli.py)."""

from model_monitoring.cli import main

if __name__ == "__main__":
    main()
