"""Data: validation of user data, the embedded datasets (catalog, synthetic sets, shipped files).

``ppgen.data.load("faithful")`` returns an embedded dataset; ``as_tensor`` / ``as_data`` validate what
users pass to :func:`ppgen.fit`. Nothing is downloaded at run time: files live in ``files/``.
"""

from ppgen.data import catalog as _catalog  # noqa: F401 - the built-in datasets register themselves
from ppgen.data.inputs import as_data
from ppgen.data.registry import (
    GENERATION_SEED,
    SPLITS,
    Dataset,
    datasets,
    generate,
    load,
    load_labels,
    register,
    registry_table,
    train_test_split,
)
from ppgen.data.validation import as_tensor

__all__ = [
    "as_tensor",
    "as_data",
    "load",
    "load_labels",
    "generate",
    "register",
    "datasets",
    "registry_table",
    "Dataset",
    "train_test_split",
    "GENERATION_SEED",
    "SPLITS",
]
