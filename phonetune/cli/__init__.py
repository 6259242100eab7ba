"""The ``phonetune`` command line: ``main.py`` dispatches, ``commands/`` holds one module per subcommand and
``hosts.py`` the GPU probing that launching commands share. Nothing below imports the CLI.

``python -m phonetune.cli`` runs the same command as the ``phonetune`` script.
"""
