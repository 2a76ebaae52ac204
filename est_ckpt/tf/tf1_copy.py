"""The name-based copy that `also_save_tf1` keeps beside every object-based save, for TF1 consumers.

Each copy is `convert --to=tf1` of the checkpoint just saved: an index rewrite
sharing its data by hard link. TF's name-based Saver writing the tensors again
is the fallback for layouts whose variables have no unique TF1 name (some
`objects=` graphs); it needs the session, so an asynchronous save cannot take
it and says so. The copies' `checkpoint` state file and retention are kept as
`Saver.save` keeps them, across `train()` calls.
"""

from __future__ import annotations

from typing import Any, Optional

from est_ckpt import fileio
from est_ckpt.errors import ConversionError
from est_ckpt.format import state_file

DEFAULT_TF1_SUBDIR = "tf1"


class Tf1Copy:
    """Writes the name-based copies of one saver's checkpoints.

    Args:
      directory: where the copies go; `""` is `<the checkpoint's directory>/tf1/`.
      name_saver: the name-based `tf.compat.v1.train.Saver` of the same variables
        (its retention applies; it writes the fallback copy).
    """

    def __init__(self, directory: str, name_saver: Any):
        self._directory, self._name_saver = directory, name_saver
        self._recovered = False

    def directory(self, prefix: str) -> str:
        return self._directory or fileio.join(fileio.dirname(prefix), DEFAULT_TF1_SUBDIR)

    def save(self, sess: Optional[Any], prefix: str, save_path: str, global_step: Any) -> None:
        """Writes the copy of `prefix` (`sess` None: from a background write, no fallback).

        Raises:
          ConversionError: with `sess` None, the copy needs TF's name-based Saver.
        """
        from est_ckpt.tools.convert import convert_checkpoint

        directory = self.directory(prefix)
        fileio.makedirs(directory)
        name_saver = self._name_saver
        if not self._recovered:
            # A new Saver per train() call: pick up the copies earlier runs kept, so retention spans runs.
            self._recovered = True
            state = state_file.read_state(directory)
            if state is not None:
                name_saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        try:
            copy = convert_checkpoint(
                prefix, fileio.join(directory, fileio.basename(prefix)), to="tf1", force=True
            )
        except ConversionError as e:
            if sess is None:  # an asynchronous save: the session has moved on
                raise ConversionError(
                    f"{e} The name-based copy of this model needs TF's name-based Saver, which runs in the "
                    "session: use async_save=False with also_save_tf1."
                ) from None
            name_saver.save(
                sess,
                fileio.join(directory, fileio.basename(save_path)),
                global_step=global_step,
                write_meta_graph=False,
            )
            return
        # The same bookkeeping as Saver.save: the state file lists the kept copies, the oldest go.
        name_saver._RecordLastCheckpoint(copy)
        state_file.write_state(directory, copy, name_saver.last_checkpoints)
        name_saver._MaybeDeleteOldCheckpoints()


__all__ = ["DEFAULT_TF1_SUBDIR", "Tf1Copy"]
