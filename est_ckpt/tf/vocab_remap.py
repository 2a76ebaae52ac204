"""Vocabulary remapping (`tf.estimator.VocabInfo`) of a matrix already in the graph.

TF's `_warm_start_var_with_vocab` has its `LoadAndRemapMatrix` kernel read the
old matrix from the checkpoint under one name, so it cannot read a variable
whose partitions were saved one by one (`emb/part_0`, `emb/part_1`, ... in an
object-based checkpoint, see docs/FORMAT.md). `remap_initial_values` gives the
same values from the parts concatenated in the graph: the same remappings
(`GenerateVocabRemapping`), the backup initializer called with the same shapes
in the same order, and its values placed as the kernel places them (row by row
over the cells the old matrix does not give), then the OOV rows and columns.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import tensorflow as tf
from tensorflow.python.ops import variable_scope

__all__ = ["remap_initial_values"]


def remap_initial_values(parts: Sequence[Any], old: tf.Tensor, vocab_info) -> list[tf.Tensor]:
    """The initial value of each part of a variable, remapped from `old` as `vocab_info` says.

    Args:
      parts: the variable's parts in offset order (the variable alone if it is
        not partitioned); partitioned along rows, as TF requires.
      old: the whole old matrix, 2-D float32.
      vocab_info: a `tf.estimator.VocabInfo`; `axis` 0 remaps rows, 1 columns.

    Returns:
      One float32 tensor per part, of the part's shape.

    Raises:
      ValueError: `vocab_info` lacks a vocabulary or its size, or a part's
        shape does not fit it (as TF's vocabulary warm-start raises).
      TypeError: the backup initializer is not callable.
    """
    info = vocab_info
    if not (info.new_vocab and info.new_vocab_size and info.old_vocab):
        raise ValueError(
            "VocabInfo needs new_vocab, new_vocab_size and old_vocab to remap a variable "
            f"(got new_vocab={info.new_vocab!r}, new_vocab_size={info.new_vocab_size!r}, "
            f"old_vocab={info.old_vocab!r})."
        )
    initializer = info.backup_initializer or tf.compat.v1.zeros_initializer()
    if not callable(initializer):
        raise TypeError(f"VocabInfo.backup_initializer must be callable (got {initializer!r}).")
    total_rows = sum(p.shape.as_list()[0] for p in parts)
    values = []
    for part in parts:
        shape = part.shape.as_list()
        slice_info = part._get_save_slice_info()
        offset = 0
        if slice_info is not None:
            offset = variable_scope._PartitionInfo(
                full_shape=slice_info.full_shape, var_offset=slice_info.var_offset
            ).single_offset(shape)
        if info.axis == 0:
            value = _part_value(
                shape,
                offset,
                initializer,
                old,
                new_rows=info.new_vocab_size,
                new_cols=shape[1] if len(shape) == 2 else 0,
                old_row_vocab_size=info.old_vocab_size,
                row_vocabs=(info.old_vocab, info.new_vocab),
                col_vocabs=None,
                row_oov=info.num_oov_buckets,
                col_oov=0,
            )
        else:
            value = _part_value(
                shape,
                offset,
                initializer,
                old,
                new_rows=total_rows,
                new_cols=info.new_vocab_size,
                old_row_vocab_size=-1,
                row_vocabs=None,
                col_vocabs=(info.old_vocab, info.new_vocab),
                row_oov=0,
                col_oov=info.num_oov_buckets,
            )
        values.append(value)
    return values


def _part_value(
    shape: list,
    offset: int,
    initializer,
    old: tf.Tensor,
    *,
    new_rows: int,
    new_cols: int,
    old_row_vocab_size: int,
    row_vocabs: Optional[tuple[str, str]],
    col_vocabs: Optional[tuple[str, str]],
    row_oov: int,
    col_oov: int,
) -> tf.Tensor:
    """One part's value: the checks and steps of TF's `_load_and_remap_matrix_initializer`."""
    if len(shape) != 2:
        raise ValueError(f"vocabulary remapping needs a 2-D variable (got shape {shape}).")
    if shape[0] <= 0:
        raise ValueError(f"vocabulary remapping needs rows (got shape {shape}).")
    if shape[1] != new_cols + col_oov:
        raise ValueError(
            f"a part of shape {shape} must have new vocabulary size ({new_cols}) + OOV buckets ({col_oov}) "
            "columns."
        )
    if offset + shape[0] > new_rows + row_oov:
        raise ValueError(
            f"a part of {shape[0]} rows at row {offset} exceeds new vocabulary size ({new_rows}) + OOV "
            f"buckets ({row_oov})."
        )
    if row_oov < 0 or col_oov < 0:
        raise ValueError(f"num_oov_buckets must be >= 0 (got {min(row_oov, col_oov)}).")
    row_oov_here = min(shape[0], max(0, offset + shape[0] - new_rows))
    num_rows = shape[0] - row_oov_here
    if offset > new_rows:
        # A part holding OOV rows only.
        return tf.convert_to_tensor(initializer(shape))
    if row_vocabs is not None:
        row_remapping, rows_present = tf.raw_ops.GenerateVocabRemapping(
            new_vocab_file=row_vocabs[1],
            old_vocab_file=row_vocabs[0],
            new_vocab_offset=offset,
            num_new_vocab=num_rows,
            old_vocab_size=old_row_vocab_size,
        )
    else:
        # No row vocabulary: the part still reads its own rows.
        row_remapping, rows_present = tf.range(offset, offset + num_rows, dtype=tf.int64), num_rows
    col_remapping, cols_present = None, new_cols
    if col_vocabs is not None:
        col_remapping, cols_present = tf.raw_ops.GenerateVocabRemapping(
            new_vocab_file=col_vocabs[1],
            old_vocab_file=col_vocabs[0],
            new_vocab_offset=0,
            num_new_vocab=new_cols,
        )
    fill = initializer([num_rows * new_cols - rows_present * cols_present, 1])
    matrix = _remap_matrix(old, row_remapping, col_remapping, fill, num_rows, new_cols)
    if row_oov_here > 0:
        matrix = tf.concat([matrix, tf.convert_to_tensor(initializer([row_oov_here, new_cols]))], 0)
    if col_oov > 0:
        matrix = tf.concat([matrix, tf.convert_to_tensor(initializer([num_rows + row_oov_here, col_oov]))], 1)
    return matrix


def _remap_matrix(old, row_remapping, col_remapping, fill, num_rows: int, num_cols: int) -> tf.Tensor:
    """What the `LoadAndRemapMatrix` kernel computes, from a matrix in the graph.

    Cell (i, j) is `old[row_remapping[i], col_remapping[j]]` (column j itself
    without a column remapping) when neither is -1; the other cells take the
    values of `fill` in row-major order.
    """
    row_present = row_remapping >= 0
    cells = tf.gather(old, tf.maximum(row_remapping, 0), axis=0)
    if col_remapping is None:
        present = tf.tile(row_present[:, None], [1, num_cols])
    else:
        cells = tf.gather(cells, tf.maximum(col_remapping, 0), axis=1)
        present = tf.logical_and(row_present[:, None], (col_remapping >= 0)[None, :])
    # `tf.where` lists the missing cells in row-major order: the order the kernel fills them in.
    missing = tf.where(tf.logical_not(present))
    filled = tf.scatter_nd(
        missing, tf.reshape(tf.cast(fill, cells.dtype), [-1]), tf.constant([num_rows, num_cols], tf.int64)
    )
    matrix = tf.where(present, cells, filled)
    matrix.set_shape([num_rows, num_cols])
    return matrix
