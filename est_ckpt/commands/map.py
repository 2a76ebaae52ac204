"""`est-ckpt map SOURCE --target TARGET [--assignment_map SRC=DST ...] [--json]`: the warm-start dry run.

Exit 0 when `warm_start` would succeed, 1 when it would refuse (unmapped,
ambiguous or mismatched variables, unused map entries), 2 on usage errors
(a malformed `--assignment_map` or `--rename_rule`, a regex that does not compile).
With `--optimizer_state` it is the plan `convert --like=TARGET` executes
(`tools.onto.plan.plan_onto`, the same function), with its exit code: the
JSON adds `kept`, `computed` and `step_checks` as `convert --like --json`
has them, and a step count that disagrees with SRC's Adam powers is an
error (exit 1).

`--suggest` proposes the mapping itself (`mapping.suggest`): its unambiguous
pairs are planned as a rules file would be, each `mapped` entry of the JSON
gains `evidence` and `confidence`, and `ambiguous` lists the targets the
evidence cannot pair (`[{"target", "candidates": [source_key, ...]}]`); exit 0
only when every target is paired unambiguously. `--write_rules=FILE` writes
those pairs as a rules file for `--rules=FILE` (atomically; `--force` replaces).
`--check_values` reads the values of a TARGET saved from the same weights: pairs
they confirm gain the evidence `values`, ambiguous targets one candidate equals
are paired, and pairs whose values differ are left out and listed in
`values_differ` (`[{"target", "source"}]`, exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt import fileio, mapping
from est_ckpt.commands import parsing
from est_ckpt.format import checkpoint
from est_ckpt.mapping.rules_file import PRESETS, load_rules
from est_ckpt.mapping.suggest import Suggestion, suggest_mapping
from est_ckpt.tools import publish
from est_ckpt.tools.onto import plan as onto_plan

USAGE = (
    "map SOURCE --target TARGET [--assignment_map SRC=DST ...] [--rename_rule REGEX=REPLACEMENT ...] "
    "[--rules=FILE|PRESET [--rule_param NAME=VALUE ...]] "
    "[--vars_to_warm_start REGEX | --optimizer_state [--keep_unmapped]] "
    "[--suggest [--write_rules=FILE [--force]] [--check_values]] [--json]"
)


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_argument(
        "--target",
        type=parsing.non_empty("a checkpoint or model dir"),
        help="Checkpoint or model dir of the new model: its variable names, shapes and dtypes.",
    )
    add_mapping_flags(parser)
    parser.add_bool(
        "optimizer_state",
        "Plan as `convert --like` does: also TF1 optimizer slots onto a Keras optimizer's variables.",
    )
    parser.add_bool(
        "keep_unmapped",
        "With --optimizer_state: plan as `convert --like --keep_unmapped` (TARGET keeps its own values of "
        "variables SOURCE has no source for; they are listed as kept).",
    )
    parser.add_argument(
        "--vars_to_warm_start",
        type=parsing.regex,
        help="Regex: plan only the target variables whose names it matches at the start.",
    )
    parser.add_bool(
        "suggest",
        "Propose the mapping from names, shapes and layer order (no values read); ambiguous pairs are listed, "
        "never guessed.",
    )
    parser.add_argument(
        "--write_rules",
        type=parsing.non_empty("a file path"),
        help="With --suggest: write the unambiguous pairs as a rules file (read back with --rules=FILE).",
    )
    parser.add_bool("force", "With --write_rules: replace an existing FILE.")
    parser.add_bool(
        "check_values",
        "With --suggest: TARGET holds the same weights (saved from the same model), so values confirm each "
        "pair, settle ambiguous ones, and pairs whose values differ are left out (listed as values_differ).",
    )


def add_mapping_flags(parser: parsing.Parser) -> None:
    """`--assignment_map` and `--rename_rule`, as `map` and `convert --like` take them."""
    parser.add_argument(
        "--assignment_map",
        action="append",
        default=[],
        type=parsing.pair("SRC=DST", split_last=True),
        help="Repeatable SRC=DST entry in init_from_checkpoint's grammar: 'old/name=new/name', "
        "'old_scope/=new_scope/', '/=new_scope/'; SRC may be an object path ('vars/0'). Split at the "
        "last '=' (as --warm_start_map): a target name cannot hold '=', a source's object path may.",
    )
    parser.add_argument(
        "--rename_rule",
        action="append",
        default=[],
        type=parsing.pair("REGEX=REPLACEMENT", split_last=True, left_regex=True),
        help="Repeatable, ordered REGEX=REPLACEMENT rule over target names (split at the last '='): the "
        "first REGEX matching a whole name gives its source name, e.g. 'new/(.*)=old/\\1'. An empty "
        "REPLACEMENT leaves the variable alone.",
    )
    add_rules_flags(parser)


def add_rules_flags(parser: parsing.Parser) -> None:
    """`--rules` and `--rule_param`, as `map`, `convert --like` and `export` take them."""
    parser.add_argument(
        "--rules",
        type=parsing.non_empty("a rules file or a preset's name"),
        help="Mapping rules with value transforms: a rules file (a path holding a '/' or ending in .json) or "
        f"a preset: {', '.join(PRESETS)} (docs/transforms.md).",
    )
    parser.add_argument(
        "--rule_param",
        action="append",
        default=[],
        type=parsing.pair("NAME=VALUE", split_last=False),
        help="Repeatable: set a parameter of --rules (e.g. forget_bias=0.5, tf1=rnn/basic_lstm_cell).",
    )


def mapping_options(args: argparse.Namespace) -> dict:
    """The `assignment_map`, `rename_rules` and `rules` keyword arguments the mapping flags give.

    Raises:
      UsageError: `--rule_param` without `--rules`.
      RulesFileError: the rules file cannot be read, or a parameter is unknown.
    """
    return {
        "assignment_map": dict(args.assignment_map),
        "rename_rules": [(regex, repl or None) for regex, repl in args.rename_rule],
        "rules": rules_option(args),
    }


def rules_option(args: argparse.Namespace):
    """The `Rules` of `--rules` and `--rule_param`, or None.

    Raises:
      UsageError: `--rule_param` without `--rules`.
      RulesFileError: the rules file cannot be read, or a parameter is unknown.
    """
    if args.rule_param and not args.rules:
        raise parsing.UsageError("--rule_param sets a parameter of --rules: give --rules too.")
    return load_rules(args.rules, **dict(args.rule_param)) if args.rules else None


def to_json(plan: mapping.WarmStartPlan) -> dict:
    """The JSON of `est-ckpt map --json` (`transform_errors` only when a rule's transforms do not fit)."""
    out = {
        "mapped": [_mapped(a) for a in plan.assignments],
        "unmapped": [u.target for u in plan.unmapped],
        "unused_sources": list(plan.unused_sources),
        "mismatched": [
            {
                "target": a.target,
                "source_key": a.source_key,
                "target_shape": None if a.target_shape is None else list(a.target_shape),
                "source_shape": list(a.source_shape),
                "target_dtype": a.target_dtype,
                "source_dtype": a.source_dtype,
            }
            for a in plan.mismatched
        ],
    }
    if plan.transform_errors:
        out["transform_errors"] = list(plan.transform_errors)
    return out


def _mapped(a: mapping.Assignment) -> dict:
    out = {"target": a.target, "source_key": a.source_key}
    if a.transform is not None:
        out["sources"] = [",".join(k) for k in a.transform.keys]
        out["transforms"] = a.transform.as_json()
        out["index_only"] = a.transform.index_only
    return out


def onto_json(planned: onto_plan.OntoPlan) -> dict:
    """What `map --optimizer_state --json` adds to `to_json`, as `convert --like --json` has it."""
    return {
        "kept": list(planned.kept),
        "computed": planned.computed(),
        "step_checks": list(planned.step_checks),
    }


def _line(a: mapping.Assignment) -> str:
    if a.shape_ok and a.dtype_ok:
        verdict = "ok"
    else:
        verdict = "MISMATCH " + "; ".join(
            w
            for ok, w in (
                (a.shape_ok, f"shape {list(a.target_shape or [])} vs {list(a.source_shape)}"),
                (a.dtype_ok, f"dtype {a.target_dtype} vs {a.source_dtype}"),
            )
            if not ok
        )
    if a.transform is None:
        return f"{a.target} <- {a.source_key}  [{verdict}]"
    sources = " + ".join(",".join(k) for k in a.transform.keys)
    how = "; ".join(a.transform.describe()) or "as is"
    return f"{a.target} <- {sources}  [{verdict}]  via {how}" + (
        "  (index only)" if a.transform.index_only else ""
    )


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 1:
        raise parsing.UsageError(
            f"map takes exactly one SOURCE checkpoint (got {len(args.positionals)} arguments)."
        )
    if not args.target:
        raise parsing.UsageError("map needs --target TARGET (a checkpoint or model dir of the new model).")
    options = mapping_options(args)  # a bad rules file is named before any checkpoint is read
    if (args.write_rules or args.force or args.check_values) and not args.suggest:
        raise parsing.UsageError("--write_rules, --force and --check_values apply to --suggest.")
    if args.suggest and (options["assignment_map"] or options["rename_rules"] or options["rules"]):
        raise parsing.UsageError(
            "--suggest proposes the mapping itself: drop --assignment_map, --rename_rule and --rules."
        )
    source, target = checkpoint.read_checkpoint(args.positionals[0]), checkpoint.read_checkpoint(args.target)
    suggestion = None
    if args.suggest:
        suggestion = suggest_mapping(source, target, check_values=args.check_values)
        rules = suggestion.rules()
        options["rules"] = load_rules(rules) if rules["rules"] else None
        if args.write_rules:
            publish.check_file_destination(
                args.write_rules, inputs=(source.prefix, target.prefix), force=args.force,
                on_directory="--write_rules names one file.",
            )  # fmt: skip
            data = (json.dumps(rules, indent=1) + "\n").encode("utf-8")
            publish.write_file(args.write_rules, lambda tmp: fileio.write_new(tmp, data))
    # A Keras file's variables whose names Keras does not record go by their keys: say which.
    notes = [f"{info.prefix}: {why}" for info in (source, target) for why in info.unnamed]
    if args.optimizer_state:
        if args.vars_to_warm_start:
            raise parsing.UsageError(
                "--optimizer_state plans every template variable: drop --vars_to_warm_start."
            )
        planned = onto_plan.plan_onto(
            source,
            target,
            **options,
            keep_unmapped=args.keep_unmapped,
            strict=False,
        )
        plan = planned.plan
    else:
        if args.keep_unmapped:
            raise parsing.UsageError(
                "--keep_unmapped applies to --optimizer_state (the plan of convert --like), not to the "
                "warm-start plan."
            )
        planned = None
        plan = mapping.map_checkpoints(
            source,
            target,
            **options,
            vars_to_warm_start=args.vars_to_warm_start,
        )
    if args.json:
        out = to_json(plan)
        if planned is not None:
            out.update(onto_json(planned))
        if suggestion is not None:
            suggestion_json(out, plan, suggestion, source)
        if notes:
            out["notes"] = notes
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        lines = [f"source: {plan.checkpoint} ({plan.format})"]
        lines += [_line(a) for a in plan.assignments]
        for u in plan.unmapped:
            if u.ambiguous_keys:
                lines.append(
                    f"ambiguous: {u.target} <- '{u.source_name}' held by {', '.join(u.ambiguous_keys)}"
                )
            else:
                near = plan.closest(u.source_name)
                lines.append(f"unmapped: {u.target}" + (f"  (closest: {', '.join(near)})" if near else ""))
        lines += [f"skipped by rule: {name}" for name in plan.skipped]
        lines += [f"unused source: {key}" for key in plan.unused_sources]
        lines += [f"unused mapping: {entry}" for entry in plan.unused_mappings]
        lines += [f"transform error: {message}" for message in plan.transform_errors]
        if suggestion is not None:
            lines += [f"suggested: {p.target} <- {p.source}  ({', '.join(p.evidence)}; confidence "
                      f"{p.confidence:.2f})" for p in suggestion.pairs]  # fmt: skip
            lines += [f"ambiguous: {t} <- one of {', '.join(c)}" for t, c in suggestion.ambiguous]
            lines += [f"values differ: {t} <- {s} (left out)" for t, s in suggestion.values_differ]
        if planned is not None:
            lines += [f"kept: {key}" for key in planned.kept]
            lines += [f"computed: {key} = {value}" for key, value in planned.computed().items()]
            lines += [f"note: {note}" for note in planned.step_checks]
        lines += [f"note: {note}" for note in notes]
        lines.append(
            f"{len(plan.assignments)} mapped, {len(plan.unmapped)} unmapped, {len(plan.mismatched)} mismatched, "
            f"{len(plan.unused_sources)} unused source(s): "
            + (
                "ok"
                if plan.ok
                else "convert --like would refuse this"
                if planned
                else "warm_start would refuse this"
            )
        )
        sys.stdout.write("\n".join(lines) + "\n")
    return 0 if plan.ok and not (suggestion and (suggestion.ambiguous or suggestion.values_differ)) else 1


def suggestion_json(out: dict, plan: mapping.WarmStartPlan, suggestion: Suggestion, source) -> None:
    """What `map --suggest --json` adds: `evidence` and `confidence` on each `mapped` entry, `ambiguous` and
    `values_differ`."""
    by_target = {p.target: p for p in suggestion.pairs}
    for entry, a in zip(out["mapped"], plan.assignments):
        p = by_target.get(a.target)
        if p is not None:
            entry["evidence"], entry["confidence"] = list(p.evidence), p.confidence
        else:  # its own name, or optimizer state following its variable
            entry["evidence"] = ["name"] if a.source_name == a.target else ["follows its variable"]
            entry["confidence"] = 1.0
    index = mapping.NameIndex(source) if suggestion.ambiguous else None  # only to name candidates' keys
    out["ambiguous"] = [
        {"target": t, "candidates": [",".join(index.resolve(c)[0][0]) for c in candidates]}
        for t, candidates in suggestion.ambiguous
    ]
    out["values_differ"] = [{"target": t, "source": s} for t, s in suggestion.values_differ]
