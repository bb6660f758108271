"""Converters from other frameworks to tf_lrp layouts."""

from __future__ import annotations
