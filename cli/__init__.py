"""The ``tokzoo`` command line (installed as the import package ``tokzoo_cli``)."""
