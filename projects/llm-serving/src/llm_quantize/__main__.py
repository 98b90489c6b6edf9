"""``python -m llm_quantize``: the command line (cli.py)."""

from llm_quantize.cli import main

if __name__ == "__main__":
    main()
