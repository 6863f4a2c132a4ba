"""The stages of a run, one module each (corpus, embed, cluster, tokens, search, export, compare), each
pairing with its `climb_ray/adapters/ray_<stage>.py` and returning a small typed result (CorpusResult,
...: kept as JSON in the stage's `_DONE` marker, describing itself); `pipeline` holds their order and what
each depends on (from config.py). Above them: the CLI (`cli.py`, `commands.py`); below: the pure core (`climb_ray/*.py`),
which imports neither this package nor the adapters. `asktell` drives the search from files (climb-ray
ask / tell)."""
