"""The bundled demo model and data set."""

from __future__ import annotations
