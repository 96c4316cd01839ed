"""One module per model kind; each defines ``KIND`` (a :class:`~beatdbn.experiments.registry.ModelKind`).

The registry finds them all (:func:`beatdbn.experiments.registry.kinds`): adding a model is adding a module
here.
"""
