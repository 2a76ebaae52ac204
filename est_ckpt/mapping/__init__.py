"""Which checkpoint key initialises which variable: the warm-start plan, without TensorFlow.

A target variable (a name in the new model) gets its source name from, in
this order:

1. an exact `assignment_map` entry `{'old/name': 'new/name'}`;
2. the most specific scope entry of `assignment_map` (`{'old_scope/': 'new_scope/'}`,
   `{'/': 'new_scope/'}`, `{'old_scope/': '/'}`), with the grammar of
   `tf.compat.v1.train.init_from_checkpoint`;
3. the first of the ordered `rename_rules` `(regex, replacement)` whose regex
   matches the whole target name (`re.fullmatch`): the source name is
   `replacement` with its group references (`\\1`, `\\g<1>`, `\\g<name>`)
   filled in; a `None` replacement leaves the variable alone;
4. its own name.

(`var_name_to_prev_var_name`, TF's `{target: source}` renames, counts as
exact `assignment_map` entries.) Every `assignment_map` entry and rename rule
must apply to at least one variable.

A source name then resolves to one checkpoint key: a key itself (a TF1 name,
or a full object-based key), the `full_name` an object-based checkpoint
recorded for a variable, or an object path without its
`/.ATTRIBUTES/VARIABLE_VALUE` tail (`'vars/0'`). A name held by several keys is
refused (`AmbiguousNameError` lists them), except for the parts of a
partitioned variable saved one by one (`emb/part_0`, `emb/part_1`, ... all
recorded as `emb`), which together form that variable.

`key_for_name` and `name_for_key` are the same lookups for one name or key.

The modules, one concept each: `names` (names ⇄ keys, the one resolver),
`tf1_names` (every variable of a checkpoint under its TF1 name, as `convert`
and `diff` key them), `rules` (assignment maps and rename rules), `plan` (the
plan's types) and `planner` (`plan_mapping`, `map_checkpoints`). This package
re-exports their public names.
"""

from __future__ import annotations

from est_ckpt.mapping.names import NameIndex, Source, key_for_name, name_for_key, part_number
from est_ckpt.mapping.plan import Assignment, Target, Unmapped, WarmStartPlan
from est_ckpt.mapping.planner import TargetsArg, map_checkpoints, plan_mapping, targets_from_checkpoint
from est_ckpt.mapping.rules import AssignmentMap, RenameRule, RenameRules
from est_ckpt.mapping.tf1_names import Naming, Variable, tf1_variables

__all__ = [
    "Assignment",
    "AssignmentMap",
    "NameIndex",
    "Naming",
    "RenameRule",
    "RenameRules",
    "Source",
    "Target",
    "TargetsArg",
    "Unmapped",
    "Variable",
    "WarmStartPlan",
    "key_for_name",
    "map_checkpoints",
    "name_for_key",
    "part_number",
    "plan_mapping",
    "targets_from_checkpoint",
    "tf1_variables",
]
