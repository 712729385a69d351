"""`make bench-smoke`: an alias of `python -m benchmarks.bench --quick` (20 orders per system).

Extra arguments are passed on, e.g. `python -m benchmarks.smoke --skip-stock --orders 10`.
"""

from __future__ import annotations

import sys

from benchmarks.bench import main

if __name__ == "__main__":
    sys.exit(main(["--quick", *sys.argv[1:]]))
