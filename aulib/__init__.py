"""aulib: a reproducible companion to five facial Action Unit detection papers.

Layers (each imports only those below it): data -> models, losses -> methods -> train -> eval -> viz;
notebooks and the CLI sit on top. See README.md.
"""

__version__ = "0.1.0"
