from llm_alignment.cli import main

main()
