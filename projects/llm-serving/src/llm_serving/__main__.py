from llm_serving.cli import main

raise SystemExit(main())
