"""Dataset layer: zarr demonstration stores, window sampling, normalisation and point geometry."""

from dynarep.data.geometry import (
    crop_mask,
    farthest_point_sample,
    point_flow,
    quat_to_mat,
)
from dynarep.data.normalizer import MinMaxNormalizer
from dynarep.data.sampler import (
    SequenceSampler,
    create_indices,
    index_table,
    split_episodes,
)
from dynarep.data.store import FORMAT_VERSION, DatasetWriter, ZarrDataset, write_dataset

__all__ = [
    "FORMAT_VERSION",
    "DatasetWriter",
    "MinMaxNormalizer",
    "SequenceSampler",
    "ZarrDataset",
    "create_indices",
    "crop_mask",
    "farthest_point_sample",
    "index_table",
    "point_flow",
    "quat_to_mat",
    "split_episodes",
    "write_dataset",
]
