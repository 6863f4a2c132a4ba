"""climb_ray: CLIMB data-mixture search (arXiv 2504.13161) on Ray.

Importing the package is cheap: torch, transformers and ray are imported where they are used.
"""

__version__ = "0.1.0"
