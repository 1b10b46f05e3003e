"""The ``boxoffice`` command line and the dev supervisor. Imports no service: it starts them
by their factory's import string."""
