"""The sharded sink: plan, determinism whatever the order, atomic and complete output."""
import random

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.core.schema import make_row, records_table, row_arrow_schema
from pipelines.core.sink import (KEY_BATCH_ROWS, ParquetShards, ShardingConfig, WriteShards, plan_shards,
                                 row_key, row_keys, shard_layout)


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
                     source_file="f", record_id=str(i)) for i in range(n)]


def _write(rows, directory, config, repeated=()):
    spill = directory.parent / f"{directory.name}-spill"
    with BeamTestPipeline(runner="FnApiRunner") as p:
        _ = (p | beam.Create(rows, reshuffle=True)
             | WriteShards(str(directory), "d", ParquetShards(config, repeated), config, spill_dir=str(spill),
                           subset_field="subset", group_field=repeated[0] if repeated else None))
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
