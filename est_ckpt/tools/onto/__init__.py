"""Converting a checkpoint onto a template's layout: the new model's own keys, values from the old one.

`convert_checkpoint(src, dst, like=TEMPLATE)` writes a checkpoint with exactly
TEMPLATE's keys, dtypes, shapes and object graph (its entry, byte for byte),
every variable's value taken from SRC. Which SRC key feeds which TEMPLATE
variable is the plan `est-ckpt map SRC --target TEMPLATE --optimizer_state`
shows (`onto.plan.plan_onto`, one function for both commands, over
`mapping.optimizer_state.plan_onto_template`: the warm-start planner's
`map_checkpoints`, plus optimizer state): TF1 names, recorded
`full_name`s or object paths on both sides, `assignment_map`, `rename_rules`.

Like `convert`, only the index is written: an entry is reused verbatim (its
shard renumbered), SRC's and TEMPLATE's data shards are shared by hard link,
nothing is loaded (but the step count, Adam's powers and the learning rate,
scalars, and TF1 Momentum / Keras SGD slots, which are computed) and TensorFlow
is never imported. TEMPLATE keys that are
not variables (and `save_counter`, bookkeeping of `tf.train.Checkpoint`)
keep TEMPLATE's entries; so do unmapped variables with `keep_unmapped`.
Optimizer state maps both ways between TF1 slots, the TF 2.11+ Keras
optimizer's variables and legacy Keras `.OPTIMIZER_SLOT`s where both
optimizers give it the same meaning (`mapping.optimizer_state`); its
hyperparameters keep TEMPLATE's values. The step count carried over is
checked against SRC's TF1 Adam powers, and a TF1 template's powers that SRC
lacks are derived from the step count; Keras SGD's velocity is
`-learning_rate` times TF1 Momentum's accumulator, and back
(`onto.momentum`): the only values written, in one small extra shard
(`onto.steps.new_tensors`, written by `format.assembly`). Parts saved one by one in SRC are joined
into one partitioned entry over their own data. A variable computed by
`rules`' transforms (`mapping.transforms`) links its source's entry under the
template's shape when the transforms are reshapes, and is otherwise computed
by `tools.compute`, streamed into that extra shard.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence, Union

from est_ckpt import fileio
from est_ckpt.errors import ConversionError
from est_ckpt.format import checkpoint, dtypes, keras_file
from est_ckpt.format.assembly import Assembly
from est_ckpt.mapping import RenameRule, Source, WarmStartPlan
from est_ckpt.mapping.rules_file import RulesArg
from est_ckpt.mapping.tf1_names import join_parts, slices_by_name
from est_ckpt.mapping.transforms import Transform
from est_ckpt.tools import compute, publish
from est_ckpt.tools.onto import momentum as onto_momentum
from est_ckpt.tools.onto import steps as onto_steps
from est_ckpt.tools.onto.plan import plan_onto


@dataclasses.dataclass(frozen=True)
class OntoReport:
    """What a conversion onto a template did.

    Attributes:
      prefix: the prefix written.
      plan: the mapping applied (the plan `est-ckpt map SRC --target TEMPLATE` shows).
      kept: TEMPLATE keys that keep TEMPLATE's values, in key order.
      computed: TEMPLATE keys given new values that SRC does not hold: TF1 Adam's
        `beta1_power`/`beta2_power` from a Keras step count, with those values; Momentum slots
        computed from SRC's, with how (`"-0.1 * 'dense/kernel/Momentum'"`, `"-'<velocity key>' / 0.1"`).
      step_checks: how the step count carried over was checked against SRC's Adam powers, and what
        the computed Momentum slots assume.
      state_file_updated: whether the `checkpoint` state file changed (it names `prefix` as the latest).
      copied_bytes: data copied rather than linked (remote paths, another file system).
      written: what DST is: `"checkpoint"`, or TEMPLATE's Keras file kind (`"weights.h5"`, `"keras"`).
    """

    prefix: str
    plan: WarmStartPlan
    kept: tuple[str, ...]
    state_file_updated: bool
    copied_bytes: int
    computed: tuple[tuple[str, Union[float, str]], ...] = ()
    step_checks: tuple[str, ...] = ()
    written: str = "checkpoint"


def convert_onto(
    src: str,
    dst_prefix: str,
    *,
    like: str,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    keep_unmapped: bool = False,
    force: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    rules: RulesArg = None,
) -> OntoReport:
    """`convert_checkpoint(src, dst_prefix, like=...)`, returning an `OntoReport` (used by the CLI)."""
    info = checkpoint.read_checkpoint(src)
    template = checkpoint.read_checkpoint(like)
    planned = plan_onto(
        info,
        template,
        assignment_map=assignment_map,
        rename_rules=rename_rules,
        keep_unmapped=keep_unmapped,
        rules=rules,
    )
    if template.format == "keras":
        return _onto_keras_file(info, template, planned, dst_prefix, force=force)
    sources, computed = planned.sources, {**planned.powers, **planned.scaled}
    dest = publish.destination(info.prefix, dst_prefix, force=force, inputs=(template.prefix,))

    # One shard set: SRC's shards that an entry uses, then TEMPLATE's, renumbered in that order.
    assembly = Assembly(info.bundle, template.bundle)
    slices = {id(b): slices_by_name(b) for b in (info.bundle, template.bundle)}
    for key in template.bundle.entries:
        source = sources.get(key)
        if key in computed:
            continue
        if isinstance(source, Transform):
            if source.index_only and info.bundle.checksummed:  # a reshape: the same bytes, another shape
                assembly.link(key, info.bundle, info.bundle.entries[source.keys[0][0]], shape=source.shape)
            else:
                assembly.compute(
                    key, dtypes.DTYPE_ENUM[source.dtype], source.shape, compute.producer(info, source)
                )
            continue
        if isinstance(source, Source):  # parts saved one by one, joined
            joined = join_parts(info, key, source)
            assembly.link_parts(key, joined.entry, info.bundle, joined.parts)
            continue
        b, old = (info.bundle, source) if source is not None else (template.bundle, key)
        owner = info if source is not None else template
        entry = b.entries[old]
        if not b.checksummed:  # a Keras file's bytes: copied (checksummed as written), never linked
            assembly.compute(key, entry.dtype, entry.shape, compute.producer(owner, _identity(owner, old)))
        elif entry.slices:
            assembly.link_parts(key, entry, b, slices[id(b)].get(old, ()))
        else:
            assembly.link(key, b, entry)
    for key, value in onto_steps.new_tensors(planned.powers, {}).items():
        assembly.compute(key, *value)
    for key, transform in onto_momentum.transforms(info, planned.scaled).items():
        assembly.compute(
            key, dtypes.DTYPE_ENUM[transform.dtype], transform.shape, compute.producer(info, transform)
        )
    publish.check_sources(assembly.referenced(), dest.prefix)
    out = assembly.rows(header_template=template.bundle.header)
    published = publish.publish(
        dest, out.header, out.rows, out.shards, new_shard=out.new_shard, progress=progress
    )
    return OntoReport(
        dest.prefix,
        planned.plan,
        planned.kept,
        published.state_file_updated,
        published.copied_bytes,
        tuple(planned.computed().items()),
        planned.step_checks,
    )


def _identity(info: checkpoint.CheckpointInfo, key: str) -> Transform:
    """No op: the tensor `key` of `info` as it is (a `compute.producer` of it copies it, streamed)."""
    t = info.tensors[key]
    return Transform((key,), (tuple(t.shape),), (t.dtype,), (), ((key,),), (0,))


def _keras_values(
    info: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo, planned
) -> dict[str, Callable]:
    """`{template dataset: writer}` for every dataset given a value from SRC (or computed)."""
    out: dict[str, Callable] = {}
    scaled = onto_momentum.transforms(info, planned.scaled)
    for key in template.keras.datasets:
        source = planned.sources.get(key)
        if key in scaled:
            transform = scaled[key]
        elif isinstance(source, Transform):
            transform = source
        elif isinstance(source, Source):
            t = template.tensors[key]
            transform = Transform(
                (key,),
                (tuple(source.shape),),
                (source.dtype,),
                (),
                (tuple(source.keys),),
                (source.part_axis or 0,),
            )
            if tuple(source.shape) != tuple(t.shape):
                raise ConversionError(f"{info.prefix}: the parts of '{key}' do not join to {list(t.shape)}.")
        elif isinstance(source, str):  # stored whole or as one sliced entry: `compute` reads either
            transform = _identity(info, source)
        elif key in planned.powers:
            raise ConversionError(
                f"{template.prefix}: '{key}' would be a TF1 Adam power: no Keras file holds one."
            )
        else:
            continue
        t = template.tensors[key]
        if transform.dtype != t.dtype or tuple(transform.shape) != tuple(t.shape):
            raise ConversionError(
                f"{template.prefix}: '{key}' is {t.dtype} {list(t.shape)}, and its source gives "
                f"{transform.dtype} {list(transform.shape)}."
            )
        out[key] = compute.producer(info, transform).write
    return out


def _onto_keras_file(
    info: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo, planned, dst: str, *, force: bool
) -> OntoReport:
    """Writes DST as TEMPLATE's Keras file (`.weights.h5` or `.keras`) holding SRC's values."""
    dst = str(dst)
    publish.check_file_destination(
        dst,
        inputs=(info.prefix, template.prefix),
        force=force,
        on_directory=f"a Keras file is written to a file path (like TEMPLATE's '{fileio.basename(template.prefix)}').",
    )
    values = _keras_values(info, template, planned)
    publish.check_sources(
        ((info.bundle, info.bundle.entries[s]) for s in planned.sources.values() if isinstance(s, str)),
        dst,
    )
    publish.write_file(dst, lambda path: keras_file.write_keras_file(template.keras, path, values))
    return OntoReport(
        dst,
        planned.plan,
        planned.kept,
        False,
        0,
        tuple(planned.computed().items()),
        planned.step_checks,
        template.keras.kind,
    )


__all__ = ["OntoReport", "convert_onto"]
