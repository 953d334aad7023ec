"""autodidact: teach agents to act from unlabeled interaction data.

Importing the package has no side effects and loads nothing heavy; `load` imports torch and the
method when called.
"""

__version__ = "0.2.0"


def load(run_dir, checkpoint=None):
    """The pretrained model of a run, ready to prompt: `autodidact.load(run).prompt(goal=g).act(obs)`."""
    from autodidact.workflows.prompt.model import load as _load
    return _load(run_dir, checkpoint)
