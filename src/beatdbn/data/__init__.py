"""From a task split and a feature store to arrays and padded batches: what training and inference both read."""
