"""Data: the shipped (or your own) catalog, GPU specs, model cards and scenarios, validated at the edge."""
