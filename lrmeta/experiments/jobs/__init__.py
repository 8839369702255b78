"""The jobs behind the ``lrmeta`` commands, one module per command."""
