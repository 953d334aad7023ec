"""Write tests/artifacts/impala_debug_reference.npz: OGBench's own ImpalaEncoder ('impala_debug',
its small test configuration) initialised by flax, a batch of frames and its output.

tests/test_pixels.py loads these weights into autodidact's encoder and checks the outputs agree,
so the layer order, 'SAME' pooling and flatten order are the reference's, not a look-alike.
Runs in the JAX reference environment (scripts/reference_env.sh):

    /tmp/refvenv/bin/python scripts/make_impala_reference.py /tmp/ogbench-ref/impls
"""

import sys

import jax
import numpy as np

sys.path.insert(0, sys.argv[1])
from utils.encoders import encoder_modules  # noqa: E402  (OGBench's impls/ on sys.path)

frames = np.random.RandomState(0).randint(0, 256, (3, 16, 16, 6)).astype(np.uint8)
module = encoder_modules["impala_debug"]()
params = module.init(jax.random.PRNGKey(0), frames)
out = module.apply(params, frames)
arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
np.savez("tests/artifacts/impala_debug_reference.npz", frames=frames, out=np.asarray(out), **arrays)
print({k: v.shape for k, v in arrays.items()}, out.shape)
