"""The performance model: memory, roofline latency, CTCF calibration, and its accuracy on public measurements."""
