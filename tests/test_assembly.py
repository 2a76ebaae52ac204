"""`format.assembly`: the one writer seam. Linked bytes from two checkpoints and a computed tensor, read by TF."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from est_ckpt.format import checkpoint, dtypes
from est_ckpt.format.assembly import Assembly
from est_ckpt.tools import publish

pytestmark = pytest.mark.tensorflow


def test_links_from_two_sources_and_a_computed_tensor_read_back_by_tensorflow(ckpts, tmp_path):
    tf = pytest.importorskip("tensorflow")
    first = checkpoint.read_checkpoint(ckpts("tf1"))  # a, b, scoped/c
    second = checkpoint.read_checkpoint(ckpts("partitioned"))
    assembly = Assembly(first.bundle, second.bundle)
    for key, entry in first.bundle.entries.items():
        assembly.link(f"first/{key}", first.bundle, entry)
    parts: dict[str, list] = {}
    for s in second.bundle.slice_entries:
        parts.setdefault(s.name, []).append((s.extents, s.entry))
    for key, entry in second.bundle.entries.items():
        if entry.slices:
            assembly.link_parts(f"second/{key}", entry, second.bundle, parts[key])
        else:
            assembly.link(f"second/{key}", second.bundle, entry)
    assembly.compute("computed", dtypes.DT_FLOAT, (2,), struct.pack("<2f", 1.5, -2.0))
    publish.check_sources(assembly.referenced(), str(tmp_path / "out"))
    out = assembly.rows(header_template=first.bundle.header)
    assert len(out.shards) == first.bundle.header.num_shards + second.bundle.header.num_shards
    dest = publish.destination(first.prefix, str(tmp_path / "out" / "model.ckpt"), force=False)
    publish.publish(dest, out.header, out.rows, out.shards, new_shard=out.new_shard)

    reader = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt"))
    for source, prefix in ((first.prefix, "first"), (second.prefix, "second")):
        original = tf.train.load_checkpoint(source)
        for key in original.get_variable_to_shape_map():
            np.testing.assert_array_equal(reader.get_tensor(f"{prefix}/{key}"), original.get_tensor(key))
    np.testing.assert_array_equal(reader.get_tensor("computed"), np.array([1.5, -2.0], np.float32))


def test_a_bundle_not_given_as_a_source_is_refused(ckpts):
    first = checkpoint.read_checkpoint(ckpts("tf1"))
    other = checkpoint.read_checkpoint(ckpts("tf2"))
    assembly = Assembly(first.bundle)
    key, entry = next(iter(other.bundle.entries.items()))
    with pytest.raises(ValueError, match="not a source of this assembly"):
        assembly.link(key, other.bundle, entry)
