"""Shipped problem instances and data: catalogs, GPU specs, model cards, calibration profiles, scenarios.

This package holds data only. Read files through :func:`solver.resources.data_path`.
"""
