"""``python -m llm_serving``: the command line (cli.py)."""

from llm_serving.cli import main

if __name__ == "__main__":
    main()
