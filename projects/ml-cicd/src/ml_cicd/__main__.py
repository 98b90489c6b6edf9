"""``python -m ml_cicd``: the command line (cli.py)."""

from ml_cicd.cli import main

if __name__ == "__main__":
    main()
