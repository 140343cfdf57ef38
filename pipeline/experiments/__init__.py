"""Working with many runs: diagnose one, sweep a grid or a search space, compare results."""
