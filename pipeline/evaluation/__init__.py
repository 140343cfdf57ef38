"""Honest metrics from scores, the classical baseline, and the plots of both."""
