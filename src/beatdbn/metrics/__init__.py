"""Scores and result records: what a finished experiment measured.

Below training and evaluation alike: ``train`` writes an :class:`ExperimentResult`,
``evaluate`` reads it back into Table 1; neither imports the other.
"""
