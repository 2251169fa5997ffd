"""memscope inside other tools: the pytest plugin (``pytest --memscope``) and the IPython magic."""
