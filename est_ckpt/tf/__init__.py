"""The TensorFlow layer: everything that imports TensorFlow or Estimator.

`scaffold` (`make_tf2_scaffold`, `make_tf1_scaffold`) and its `savers`,
`warm_starting` (`warm_start_settings`, `warm_start`), `flags` (absl flags for
launch scripts) and `runtime` (lazy, version-checked imports). No module
outside this package imports TensorFlow, except `fileio` for `scheme://` paths.
"""

from est_ckpt.tf import runtime

# `import est_ckpt.tf` without TensorFlow: one line naming what to install, not a ModuleNotFoundError deep inside.
runtime.require("est_ckpt.tf (scaffolds, warm starts, flags, the demo)")
