"""The training mix: ``data_config.json`` entries ``{"name", "lines", "weight", ...}``.

Two mixes exist:

* the *reference* mix this package builds (the repository's ``data_config.json``):
  documented lines and the weights of the original ``multi-qa_v1`` mix, one entry per
  StackExchange site (small sites pooled) and one per other dataset;
* the *measured* mix of a build (``OUT/data_config.json``): the lines each entry really
  has, with the shard files that hold it, and the licence of its dataset (``licence``,
  ``commercial``). Only what the build wrote is in it: a dataset left out (by
  ``--datasets``, ``--licences`` or for want of input) has no entry and no weight.
  A StackExchange site entry names its dataset's licence family (``cc-by-sa``); its rows
  name the version of each post.

Training picks an entry with probability proportional to its weight, fills a batch from
that one entry, and never mixes pair and triplet entries in a batch.
"""
from __future__ import annotations

import math

from pipelines.corpus import licences, registry

# Project rule for a StackExchange site that the reference mix does not list (a site that
# grew past the pooling threshold since 2021): the reference's site weights are close to
# ceil(lines / 4,420) (165 of its 173 site entries), capped at the largest site weight.
SITE_LINES_PER_WEIGHT = 4420
SITE_WEIGHT_CAP = 226


def derived_site_weight(lines: int) -> int:
    """Weight of a site entry missing from the reference mix (see module constants)."""
    return max(1, min(SITE_WEIGHT_CAP, math.ceil(lines / SITE_LINES_PER_WEIGHT)))


def _entry(spec: registry.DatasetSpec, subset: str | None, lines: int, weight: int, **extra) -> dict:
    entry = {
        "name": f"{spec.id}/{subset}" if subset else spec.id,
        "lines": lines,
        "weight": weight,
        "dataset": spec.id,
        "columns": spec.columns,
    }
    if subset:
        entry["subset"] = subset
    if spec.reference_name:
        entry["reference_name"] = (spec.reference_name.replace("<site>", subset)
                                   if subset else spec.reference_name)
    entry.update(extra)
    return entry


def reference_mix() -> list[dict]:
    """The mix of the original corpus as documented: the repository's ``data_config.json``
    (the datasets of the model card's table; one added beyond it is not part of it)."""
    entries = []
    for spec in registry.DATASETS:
        if not spec.on_card:
            continue
        source = registry.load_source(spec.source) if spec.mix_per_subset else None
        sites = source.subset_reference(spec.id) if source is not None else {}
        if sites:
            for site, ref in sites.items():
                entries.append(_entry(spec, site, ref["lines"], ref["weight"]))
        else:
            entries.append(_entry(spec, None, spec.documented_total, spec.weight))
    return entries


def measured_mix(manifest: dict) -> list[dict]:
    """The mix of one build, from its manifest: one entry per dataset, or per subset
    group for datasets with subsets, each with its shard files (relative to OUT) and
    its dataset's licence."""
    entries = []
    for dataset_id, info in manifest["datasets"].items():
        if info["status"] != "built":
            continue
        spec = registry.get(dataset_id)
        licence = licences.get(spec.licence)
        terms = {"licence": licence.id, "commercial": licence.commercial}
        if spec.mix_per_subset:
            source = registry.load_source(spec.source)
            reference = source.subset_reference(dataset_id) if source is not None else {}
            for group, group_info in info["groups"].items():
                ref = reference.get(group)
                weight = ref["weight"] if ref else derived_site_weight(group_info["rows"])
                entries.append(_entry(spec, group, group_info["rows"], weight,
                                      files=[f"{dataset_id}/{f}" for f in group_info["shards"]], **terms))
        else:
            entries.append(_entry(spec, None, info["rows"], spec.weight,
                                  files=[f"{dataset_id}/{s['file']}" for s in info["shards"]], **terms))
    return entries
