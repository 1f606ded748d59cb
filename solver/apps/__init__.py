"""Applications on the public API: sweeps, InferSave's recommend, the paper's reproduction, and the CLI."""
