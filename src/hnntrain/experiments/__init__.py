"""Sets of runs: compare, sweep, the results store, reports and the paper's claims."""
