"""Human-readable output on a terminal: live progress bars (or lines) and the candidate table."""
