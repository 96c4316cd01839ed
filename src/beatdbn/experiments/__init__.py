"""The experiment registry: every model kind of Table 1 is one module in :mod:`beatdbn.experiments.kinds`."""
