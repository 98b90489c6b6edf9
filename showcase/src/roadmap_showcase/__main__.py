import sys

from roadmap_showcase.cli import main

sys.exit(main())
