"""``python -m llm_loop``: the command line (cli.py)."""

from llm_loop.cli import main

if __name__ == "__main__":
    main()
