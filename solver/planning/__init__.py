"""Planning: candidates, presolve, the MILP solve, the frozen Plan, its exact re-check and infeasibility diagnosis."""
