"""beatdbn: audio-based music classification with a pretrained convolutional network.

An implementation of Dieleman, Brakel & Schrauwen (ISMIR 2011). The pipeline::

    MSD .h5 / audio --features--> beat-aligned (beats x 24) --store--> FeatureStore
        --tasks--> artist / genre / key splits --models/train--> conv DBN, conv MLP

Public API: :class:`FeatureStore` (open a feature store), the exception family.
"""

from beatdbn.exceptions import BeatdbnError, DataError, ParameterError

__version__ = "0.1.0"

__all__ = ["FeatureStore", "BeatdbnError", "DataError", "ParameterError", "__version__"]


def __getattr__(name):  # lazy: `import beatdbn` stays cheap for the CLI
    if name == "FeatureStore":
        from beatdbn.store.reader import FeatureStore  # reason: lazy, `import beatdbn` must not load pyarrow/h5py

        return FeatureStore
    raise AttributeError(f"module 'beatdbn' has no attribute {name!r}")
