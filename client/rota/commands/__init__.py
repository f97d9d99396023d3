"""The ``rota`` commands, one module per subject; :mod:`rota.cli` assembles them into one group."""
