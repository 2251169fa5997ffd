"""The ``memscope`` command line: :mod:`.main` holds the verb registry, one module per verb."""
