"""``python -m prompt_registry`` runs the CLI."""

from prompt_registry.cli import main

if __name__ == "__main__":
    main()
