"""``python -m experiment_tracking``: the command line (cli.py)."""

from experiment_tracking.cli import main

if __name__ == "__main__":
    main()
