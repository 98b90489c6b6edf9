"""``python -m llm_alignment``: the command line (cli.py)."""

from llm_alignment.cli import main

if __name__ == "__main__":
    main()
