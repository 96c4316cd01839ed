"""One module per classification task; each defines ``TASK`` (a :class:`~beatdbn.tasks.registry.TaskSpec`).

The registry finds them all (:func:`beatdbn.tasks.registry.specs`): adding a
task is adding a module here.
"""
