"""The sharded sink: plan, determinism whatever the order, atomic and complete output."""
import functools
import random

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.corpus import schema
from pipelines.corpus.schema import records_table, row_arrow_schema
import pytest

from pipelines.engine.shards import (KEY, KEY_BATCH_ROWS, ParquetShards, ShardingConfig, plan_shards, row_key,
                                     row_keys, shard_layout, text_bytes)
from pipelines.engine.spill import dictionary_encoded, elide_repeats, restore_repeats
from pipelines.engine.write import WriteShards

# Rows as they reach the sink: the normalisation has given them their licence.
make_row = functools.partial(schema.make_row, licence="cc-by-sa-4.0")


def test_plan_pools_small_subsets_and_gives_each_group_its_own_shards():
    plan = plan_shards([("big.site", (50_000, 1000)), ("small.a", (10, 30)), ("small.b", (9_999, 300))],
                       target_shard_bytes=400, pool_below=10_000, pool_name="small_pool")
    assert plan["subset_group"] == {"big.site": "big.site", "small.a": "small_pool", "small.b": "small_pool"}
    assert plan["groups"] == {"big.site": [0, 3], "small_pool": [3, 1]}
    assert plan["total"] == 4
    assert plan["group_rows"] == {"big.site": 50_000, "small_pool": 10_009}


def test_plan_never_makes_more_shards_than_rows():
    plan = plan_shards([("", (2, 10_000))], target_shard_bytes=10)
    assert plan["total"] == 2


def test_row_key_is_stable_and_content_sensitive():
    row = make_row("d", "a", "b", source_file="f", record_id="1")
    assert row_key(row) == row_key(dict(row))
    assert row_key(row) != row_key({**row, "positive": "c"})


def test_table_keys_are_the_record_keys_across_batches():
    # More rows than one batch of the table path, with nulls, non-ASCII text and a slice
    # that starts inside a buffer.
    rows = [make_row("d", f"anchor {i} é中", f"positive {i}", None if i % 2 else f"neg {i}",
                     subset=f"s{i % 3}", source_file="f", record_id=str(i))
            for i in range(2 * KEY_BATCH_ROWS + 17)]
    table = records_table(rows, row_arrow_schema())
    keys = row_keys(table)
    assert keys.type == pa.binary(16) and len(keys) == len(rows)
    assert keys.to_pylist() == [row_key(r) for r in rows]
    assert row_keys(table.slice(5, 3)).to_pylist() == [row_key(r) for r in rows[5:8]]
    assert len(row_keys(table.slice(0, 0))) == 0


def test_grouped_keys_hash_the_group_text_first():
    rows = [make_row("d", f"query {i % 3}", f"passage {i % 3}", f"negative {i}", source_file="f",
                     record_id=str(i)) for i in range(2 * KEY_BATCH_ROWS + 5)]
    table = records_table(rows, row_arrow_schema())
    grouped = row_keys(table, "anchor").to_pylist()
    plain = row_keys(table).to_pylist()
    assert grouped == [row_key(r, "anchor") for r in rows]
    # The first half is the same for rows of one anchor, the second half is the row's own.
    assert len({k[:8] for k in grouped}) == 3
    assert [k[8:] for k in grouped] == [k[8:] for k in plain]
    assert {k[:8] for k in grouped} == {row_key({"t": f"query {i}"}, "t")[:8] for i in range(3)}


def test_shard_layout_cuts_the_key_range_into_row_groups_ordered_by_the_second_half():
    def key(first, second):
        return first.to_bytes(8, "big") + second.to_bytes(8, "big")

    low, high = 1 << 62, 1 << 63  # a quarter of the key space
    quarter = (high - low) // 4
    firsts = [low, low + 3 * quarter + 5, low + 1, low + quarter, high - 1, low + 2]
    seconds = [5, 1, 5, 9, 0, 2]
    keys = [key(f, s) for f, s in zip(firsts, seconds)]
    array = pa.chunked_array([pa.array(keys[:2], pa.binary(16)), pa.array(keys[2:], pa.binary(16))])
    order, lengths = shard_layout(array, low, high, 4)
    # Row group 0: firsts low, low + 1, low + 2 (by second half 2, then 5 / 5 by first half);
    # group 1: low + quarter; group 2 is empty; group 3: the two at the top.
    assert order.to_pylist() == [5, 0, 2, 3, 4, 1]
    assert lengths == [3, 1, 2]
    order, lengths = shard_layout(array, 0, 1 << 64, 1)
    assert order.to_pylist() == [4, 1, 5, 0, 2, 3] and lengths == [6]
    assert shard_layout(pa.array([], pa.binary(16)), 0, 1 << 64, 3) == (pa.array([], pa.int64()), [])


def _rows(n):
    return [make_row("d", f"anchor {i}", f"positive text {i}", subset=("s1" if i % 3 else "s2"),
                     source_file="f", record_id=str(i), licence=("cc-by-sa-2.5", "cc-by-sa-3.0", "cc-by-sa-4.0")[i % 3],
                     attribution_url=f"https://example.org/q/{i}", author=None if i % 4 else f"user {i % 7}")
            for i in range(n)]


def _write(rows, directory, config, repeated=()):
    spill = directory.parent / f"{directory.name}-spill"
    with BeamTestPipeline(runner="FnApiRunner") as p:
        _ = (p | beam.Create(rows, reshuffle=True)
             | WriteShards(str(directory), "d", ParquetShards(config, repeated), config, spill_dir=str(spill),
                           subset_field="subset"))
    assert not [f for f in spill.rglob("*") if f.is_file()], "spill runs are removed"


def test_same_rows_in_any_order_give_byte_identical_shards(tmp_path):
    rows = _rows(500)
    # Small spills and row groups: many runs per shard, several row groups per shard.
    config = ShardingConfig(target_shard_bytes=4_000, row_group_bytes=1_000, spill_bytes=3_000,
                            spill_row_group_bytes=500)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    _write(rows, tmp_path / "a", config)
    _write(shuffled, tmp_path / "b", config)
    a = sorted(p.name for p in (tmp_path / "a").iterdir())
    b = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert a == b and len(a) > 4
    for name in a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    tables = [pq.read_table(tmp_path / "a" / name, use_threads=False) for name in a]
    assert sum(t.num_rows for t in tables) == 500
    # Each shard holds one subset only, so a subset is a set of files of its own.
    assert all(len(set(t.column("subset").to_pylist())) <= 1 for t in tables)
    # Inside a row group rows are in the order of their keys' second half, then first.
    for name in a:
        shard = pq.ParquetFile(tmp_path / "a" / name)
        for index in range(shard.metadata.num_row_groups):
            keys = [row_key(r) for r in shard.read_row_group(index).to_pylist()]
            assert keys == sorted(keys, key=lambda k: (k[8:], k[:8]))
    # Small row groups were used, as configured.
    assert max(pq.ParquetFile(tmp_path / "a" / name).metadata.num_row_groups for name in a) > 1
    # The columns the row schema marks "dictionary" are dictionary-encoded, the links not.
    assert sorted(map(row_key, (r for t in tables for r in t.to_pylist()))) == sorted(map(row_key, rows))
    columns = pq.ParquetFile(tmp_path / "a" / a[0]).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(columns.num_columns)}
    assert all("RLE_DICTIONARY" in encodings[name]
               for name in ("dataset", "subset", "source_file", "licence", "author"))
    assert "RLE_DICTIONARY" not in encodings["attribution_url"]


def test_output_is_complete_without_temporaries_and_stale_shards_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "d-00000-of-00099.parquet").write_bytes(b"stale")
    rows = [{**row, "subset": ""} for row in _rows(40)]
    config = ShardingConfig(target_shard_bytes=200)  # about two rows per shard: some stay empty
    _write(rows, out, config)
    names = sorted(p.name for p in out.iterdir())
    total = len(names)
    assert names == [f"d-{i:05d}-of-{total:05d}.parquet" for i in range(total)]
    counts = [pq.read_table(out / n, use_threads=False).num_rows for n in names]
    assert sum(counts) == 40 and 0 in counts


def test_rows_of_a_repeated_text_share_a_row_group_spread_over_it_and_dictionary_encoded(tmp_path):
    # 40 queries, each with one relevant passage and 12 negatives (MS MARCO's shape).
    rows = [make_row("d", f"query {q}", f"relevant passage of query {q} " * 8, f"negative {q}-{n}",
                     subset="", source_file="f", record_id=f"{q}/{n}")
            for q in range(40) for n in range(12)]
    config = ShardingConfig(target_shard_bytes=40_000, spill_bytes=9_000, row_group_bytes=14_000)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    _write(rows, tmp_path / "a", config, ("anchor", "positive"))
    _write(shuffled, tmp_path / "b", config, ("anchor", "positive"))
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) > 2
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    # The same rows as without repeated texts (elided in the runs, restored in the shards),
    # in the row schema (no dictionary type left from the runs).
    _write(rows, tmp_path / "plain", config)
    written = [pq.read_table(tmp_path / "a" / n, use_threads=False) for n in names]
    assert all(t.schema.equals(row_arrow_schema(), check_metadata=True) for t in written)
    plain = pq.read_table(tmp_path / "plain", use_threads=False).to_pylist()
    assert sorted(map(row_key, plain)) == sorted(row_key(r) for t in written for r in t.to_pylist())
    assert sorted(map(row_key, plain)) == sorted(map(row_key, rows))
    row_group_of, mixed_groups = {}, 0
    for name in names:
        shard = pq.ParquetFile(tmp_path / "a" / name)
        assert shard.metadata.num_row_groups > 1
        for index in range(shard.metadata.num_row_groups):
            anchors = shard.read_row_group(index).column("anchor").to_pylist()
            for anchor in anchors:
                assert row_group_of.setdefault(anchor, (name, index)) == (name, index)
            if len(set(anchors)) > 2:
                # Spread over the row group, not side by side (which would give
                # len - distinct neighbours with the same anchor).
                same_neighbours = sum(a == b for a, b in zip(anchors, anchors[1:]))
                assert same_neighbours < (len(anchors) - len(set(anchors))) / 2
                mixed_groups += 1
            columns = shard.metadata.row_group(index)
            encodings = {columns.column(i).path_in_schema: columns.column(i).encodings
                         for i in range(columns.num_columns)}
            assert "RLE_DICTIONARY" in encodings["positive"] and "RLE_DICTIONARY" in encodings["anchor"]
            assert "RLE_DICTIONARY" not in encodings["negative"]
    assert len(row_group_of) == 40 and mixed_groups > 2


def _sorted_run(rows, group_field):
    table = records_table(rows, row_arrow_schema())
    return table.append_column(KEY, row_keys(table, group_field)).sort_by(KEY)


def test_repeats_are_stored_once_per_group_and_batch_and_restored_from_any_read():
    # 6 queries x 5 rows; query 2 has two relevant passages; query 4 shares its passage
    # with query 5 (equal text in another group is never elided).
    rows = []
    for q in range(6):
        for n in range(5):
            passage = "shared passage" if q in (4, 5) else f"passage {q}-{n % 2 if q == 2 else 0}"
            rows.append(make_row("d", f"query {q}", passage, f"negative {q}-{n}", source_file="f",
                                 record_id=f"{q}/{n}"))
    table = _sorted_run(rows, "anchor")
    starts = [0, 7, 20]
    elided = elide_repeats(table, ("anchor", "positive"), starts)
    groups = [k[:8] for k in table[KEY].to_pylist()]
    anchors, positives = table["anchor"].to_pylist(), table["positive"].to_pylist()
    kept_anchors = elided["anchor"].to_pylist()
    kept_positives = elided["positive"].to_pylist()
    for i in range(len(rows)):
        starts_something = i in starts or i == 0 or groups[i] != groups[i - 1]
        assert (kept_anchors[i] is None) == (not starts_something)
        repeat = not starts_something and positives[i] == positives[i - 1]
        assert (kept_positives[i] is None) == repeat
        assert kept_positives[i] in (None, positives[i])
    assert elided["negative"].to_pylist() == table["negative"].to_pylist()
    # One anchor is kept per group and run batch it spans; the nulled texts are not stored.
    assert elided["anchor"].null_count == 30 - len({(g, i >= 7, i >= 20) for i, g in enumerate(groups)})
    assert elided["anchor"].combine_chunks().buffers()[2].size < table["anchor"].combine_chunks().buffers()[2].size / 2
    # Reads start at a batch start or at a group: each restores the original texts.
    group_starts = [i for i in range(1, len(rows)) if groups[i] != groups[i - 1]]
    for start in sorted(set(starts + group_starts)):
        for end in (start + 1, len(rows)):
            part = restore_repeats(elided.slice(start, end - start), ("anchor", "positive"))
            assert part["anchor"].to_pylist() == anchors[start:end]
            assert part["positive"].to_pylist() == positives[start:end]
            assert text_bytes(part["positive"]) == sum(len(p.encode()) for p in positives[start:end])
    # Reads of several runs together, reordered as a shard is.
    both = pa.concat_tables([elided.slice(0, 7), elided.slice(20)])
    restored = restore_repeats(both, ("anchor", "positive")).take([12, 0, 3, 8])
    assert restored["positive"].to_pylist() == [(positives[:7] + positives[20:])[i] for i in (12, 0, 3, 8)]
    inside_a_group = next(i for i in range(1, len(rows)) if kept_anchors[i] is None)
    with pytest.raises(ValueError, match="elided 'anchor'"):
        restore_repeats(elided.slice(inside_a_group), ("anchor",))


def test_a_text_colliding_with_another_in_its_group_is_kept():
    rows = [make_row("d", "query", f"passage {n}", None, source_file="f", record_id=str(n))
            for n in range(4)]
    table = _sorted_run(rows, "anchor")
    # Rows of one group whose texts differ (as after a collision of the group hash).
    table = table.set_column(0, table.schema.field("anchor"), pa.array(["q1", "q1", "q2", "q2"]))
    elided = elide_repeats(table, ("anchor",), [0])
    assert elided["anchor"].to_pylist() == ["q1", None, "q2", None]
    assert restore_repeats(elided, ("anchor",))["anchor"].to_pylist() == ["q1", "q1", "q2", "q2"]


def test_few_valued_columns_are_dictionary_encoded_and_decoded_by_the_cast():
    table = records_table(_rows(50), row_arrow_schema())
    encoded = dictionary_encoded(table, schema.dictionary_columns())
    assert pa.types.is_dictionary(encoded.schema.field("subset").type)
    assert len(encoded["subset"].combine_chunks().dictionary) == 2
    assert len(encoded["licence"].combine_chunks().dictionary) == 3
    assert encoded["author"].null_count == table["author"].null_count > 0
    assert encoded.cast(row_arrow_schema()).equals(table)


def test_repeated_texts_must_be_non_nullable():
    with pytest.raises(ValueError, match="non-nullable"):
        ParquetShards(ShardingConfig(), ("negative",))
