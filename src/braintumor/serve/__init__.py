"""Using a trained run outside training: ONNX export and an HTTP service.

``export.py`` writes a checked ONNX file; ``app.py`` builds the FastAPI service
(``create_app``) with its web page in ``static/``. Nothing is imported here so that
``braintumor export`` does not pay for FastAPI and ``serve`` does not pay for onnx.
"""

from __future__ import annotations
