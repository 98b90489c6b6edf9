"""``python -m prompt_registry``: the command line (cli.py)."""

from prompt_registry.cli import main

if __name__ == "__main__":
    main()
