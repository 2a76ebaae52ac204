"""`<model_dir>/flags.txt`: the resolved flags of a run, written atomically so `--flagfile` repeats it."""

from __future__ import annotations

import re

from absl import flags

from est_ckpt import fileio

__all__ = ["FLAGS_FILENAME", "write_flags_file"]

FLAGS_FILENAME = "flags.txt"


# Flags of these modules are left out of `flags.txt`: TF and Keras define theirs only
# once imported, after a launch script has parsed its command line, so a flagfile
# naming them would not parse; absl's own (logging, testing) are not the run's config.
_FRAMEWORK_MODULES = re.compile(r"^(absl|tensorflow|tensorflow_estimator|keras|tf_keras)(\.|$)")


def write_flags_file(model_dir: str, flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """Writes the resolved flags next to the model as `<model_dir>/flags.txt`, atomically.

    Every flag of the script and its libraries is written with its value
    (defaults included), so `--flagfile=<model_dir>/flags.txt` repeats the run even
    if a default changes later. A previous `flags.txt` with other content is kept
    as `flags.txt.<n>` rather than overwritten.

    Args:
      model_dir: the model directory (created if missing).
      flag_values: the parsed flags of the run.

    Returns:
      The path written.
    """
    kept = flags.FlagValues()
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if _FRAMEWORK_MODULES.match(module):
            continue
        for flag in module_flags:
            kept[flag.name] = flag
            kept.register_flag_by_module(module, flag)
    fileio.makedirs(model_dir)
    path = fileio.join(model_dir, FLAGS_FILENAME)
    tmp = fileio.temp_path(path)
    if fileio.is_remote(path):
        fileio.write_atomic(tmp, kept.flags_into_string().encode())
    else:
        kept.append_flags_into_file(tmp)
    if fileio.exists(path):
        if fileio.read_bytes(path) == fileio.read_bytes(tmp):
            fileio.remove(tmp)
            return path
        n = 1
        while fileio.exists(f"{path}.{n}"):
            n += 1
        fileio.rename(path, f"{path}.{n}")
    fileio.rename(tmp, path)
    return path
