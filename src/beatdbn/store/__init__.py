"""The feature store: sharded, compressed, ragged beat-aligned features.

``extract`` writes it (in parallel, resumably), ``FeatureStore`` reads it.
"""

from beatdbn.store.reader import FeatureStore, TrackRecord

__all__ = ["FeatureStore", "TrackRecord"]
