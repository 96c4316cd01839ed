"""``beatdbn serve``: a local page to try a song with one or more finished models.

:func:`~beatdbn.serve.app.create_app` builds the FastAPI app (FastAPI and
uvicorn are the optional extra ``beatdbn[serve]``); the page is our own small
HTML/JS/CSS in ``static/``, nothing is fetched from the internet.
"""

from beatdbn.serve.app import UploadLimits, create_app

__all__ = ["create_app", "UploadLimits"]
