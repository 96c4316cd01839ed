"""Models shipped inside the package (package data, no code).

* ``key_audio/`` -- the 12-tonic key model for audio (``model.pt`` +
  ``config.json`` as :meth:`beatdbn.models.convmlp.ConvMLP.save` writes them,
  and ``PROVENANCE.json``: seed, corpus size, recipe, versions, accuracies and
  the command that built it). It was trained only on audio that beatdbn
  synthesizes itself (:mod:`beatdbn.synth.audio_keys`), by
  ``scripts/train_key_model.py`` (``make model``). Load it with
  :func:`beatdbn.inference.shipped_model`; ``beatdbn predict --task key
  song.mp3`` uses it.
"""
