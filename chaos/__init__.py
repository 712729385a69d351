"""The chaos suite of issue 9: `make chaos` (`python -m chaos [--quick]`). See README, "Chaos suite"."""
