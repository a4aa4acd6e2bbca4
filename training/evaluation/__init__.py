"""Evaluation and threshold calibration of an exported model: the LFW and CFP protocols, run through
the service's own runtime (facever.model). Nothing here imports torch (tests/test_layering.py)."""
