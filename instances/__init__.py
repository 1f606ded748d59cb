"""Shipped problem instances and data: catalogs, GPU specs, model cards, calibration profiles, scenarios.

This package holds data only. Read files through :func:`solver.data.resources.data_path`.
"""
