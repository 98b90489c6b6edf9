"""Run the experiment-tracking benchmark and write benchmarks/results.json.

    python projects/experiment-tracking/benchmarks/run_benchmark.py [--repeats 3] [--output PATH]

Same as ``python -m experiment_tracking benchmark``; see that command's --help.
"""

from __future__ import annotations

import sys

from experiment_tracking.cli import app

if __name__ == "__main__":
    sys.exit(app(["benchmark", *sys.argv[1:]]))
