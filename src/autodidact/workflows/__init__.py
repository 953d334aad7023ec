"""What a user runs: train, evaluate, prompt, collect, inspect (info), benchmark, demo.

Each workflow builds on the methods, networks, data and environments below it and is what the
command line calls; `runs.py` and `checkpoint.py` describe the run directory they share."""
