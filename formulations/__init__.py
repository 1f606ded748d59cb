"""The MILP: a solver-neutral linear model built from precomputed candidates (see README.md)."""
