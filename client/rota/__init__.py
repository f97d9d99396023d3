"""Rota's client package: the ``rota`` command line and the ``rota.job`` library for training jobs."""

__version__ = "0.1.0"
