"""Offline training and LFW evaluation of the embedding network."""
