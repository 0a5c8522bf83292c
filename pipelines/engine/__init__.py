"""The Beam engine: reading files of every kind (byte ranges, blocks, archive members,
file-level rejects, progress), joins, deterministic shards and Arrow helpers.

A source uses only the names below (``from pipelines.engine import ReadFiles, ...``);
``tests/test_layers.py`` fails when one reaches into the engine's modules. The build
uses the shard writer (:mod:`pipelines.engine.write`) and the settings
(:mod:`pipelines.engine.options`) directly.
"""
from pipelines.engine import files
from pipelines.engine.formats import (blank_file, iter_xml_elements, json_items, json_lines, parse_int, parse_json,
                                      read_json_document, text_records, tsv_tables, unless_blank, without_bom)
from pipelines.engine.arrow import GatherTables, as_tables, tables
from pipelines.engine.join import HashJoin, id_hash, id_hash_one, text_key
from pipelines.engine.lines import (is_piece, located_lines, location, range_lines, range_start, stream_is_empty,
                                    text_lines)
from pipelines.engine.read import ReadFiles, tagged_records

__all__ = [
    # reading: the transform, and what a source's read_file builds on
    "ReadFiles", "tagged_records", "files",
    "text_lines", "text_records", "json_lines", "json_items", "parse_json", "parse_int", "tsv_tables",
    "read_json_document", "iter_xml_elements", "blank_file", "unless_blank", "without_bom",
    "stream_is_empty", "range_start", "range_lines", "is_piece", "located_lines", "location",
    # joins and Arrow tables
    "HashJoin", "GatherTables", "tables", "as_tables", "text_key", "id_hash", "id_hash_one",
]
