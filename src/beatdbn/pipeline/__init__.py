"""The whole-pipeline driver: tasks, pretraining, baselines, conv MLPs, Table 1 and the report in one run.

Above training and evaluation alike (it calls both); nothing below imports it.
"""
