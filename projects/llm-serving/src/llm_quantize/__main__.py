from llm_quantize.quantize import main

raise SystemExit(main())
