"""The rules that find a text overlapping an evaluation text, applied to whole columns.

An :class:`EvalIndex` holds the evaluation texts (queries, relevant passages) in the forms
three rules compare, in this order (:doc:`docs/decontamination.md` gives the reasons):

* ``exact``: the match forms (:mod:`pipelines.corpus.matching`) are equal, i.e. the same
  words in the same order, whatever the case, punctuation and spacing.
* ``13-gram``: the text shares 13 consecutive words with an evaluation text of 13 words
  or more (the rule of language-model decontamination).
* ``jaccard``: both texts have at most :data:`MAX_WORDS` words, the Jaccard similarity of
  their word sets, each word weighted by its rarity among the evaluation texts, is at
  least :data:`JACCARD`, and they share :data:`MIN_SHARED` words, one of them a topic
  word (in at most :data:`TOPIC_SHARE` of the evaluation texts): a query paraphrased by a
  few words.

Texts are cut into words as the match form does (lower-cased, runs of letters and digits)
by byte arithmetic over the Arrow buffers, and each word becomes a 64-bit hash; a rule
then compares hashes with sorted arrays and a Bloom filter. The cost is that of a few
passes over a column's bytes, whatever the size of the index; only the few candidate
pairs of the ``jaccard`` rule are compared one by one, and those vectorised too.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NGRAM = 13
JACCARD = 0.6
MIN_SHARED = 3
MAX_WORDS = 40
# Words of no topic weigh at most this share of the rarest word, even where a small
# evaluation set makes them look rare.
FUNCTION_WORD_SHARE = 0.25
# A topic word is in at most this share of the evaluation texts (at least one text).
TOPIC_SHARE = 0.01
_FUNCTION_WORDS = (
    "a about after again all also am an and any are aren as at be been before being between "
    "both but by can could d did didn do does doesn don down during each for from had has have "
    "having he her here him his how i if in into is isn it its just ll m may me might more most "
    "must my no not of off on only or our out over own re s same shall she should so some such t "
    "than that the their them then there these they this those through to too up us ve very was "
    "wasn we were what when where which who whom whose why will with would you your")
FUNCTION_WORDS = tuple(_FUNCTION_WORDS.split())
RULE_NAMES = ("exact", f"{NGRAM}-gram", "jaccard")
RULES = {"match_form": "lower-cased, runs of letters and digits", "ngram_words": NGRAM,
         "jaccard_threshold": JACCARD, "jaccard_min_shared_words": MIN_SHARED,
         "jaccard_max_words": MAX_WORDS, "jaccard_weight": "ln(1 + N / df)",
         "function_word_share": FUNCTION_WORD_SHARE, "topic_share": TOPIC_SHARE, "version": 3}

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
# An odd base, fixed so that hashes are the same in every process, and its inverse mod 2**64.
_GRAM_BASE = _U64(int.from_bytes(hashlib.sha256(b"ngram").digest()[:8], "little") | 1)
_GRAM_BASE_INVERSE = _U64(pow(int(_GRAM_BASE), -1, 1 << 64))
_MAGIC = b"EVALIDX1"
_EPS = 1e-9


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser, in place: every input bit moves every output bit."""
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


# Per code point: 1 for a letter or digit (RE2's \pL, \pN: the classes of
# matching.match_forms, asked of RE2 itself), 0 for anything else, -1 until first seen.
_LETTER_OR_DIGIT = np.full(0x110000, -1, np.int8)
_LETTER_OR_DIGIT[0xD800:0xE000] = 0  # surrogates: never in valid UTF-8


def _letters_and_digits(points: np.ndarray) -> np.ndarray:
    """Whether each code point is a letter or a digit."""
    unknown = np.unique(points[_LETTER_OR_DIGIT[points] < 0])
    if len(unknown):
        chars = pa.array([chr(point) for point in unknown.tolist()], pa.string())
        _LETTER_OR_DIGIT[unknown] = pc.match_substring_regex(chars, r"^[\pL\pN]$").to_numpy(zero_copy_only=False)
    return _LETTER_OR_DIGIT[points] == 1


class _Words(NamedTuple):
    hashes: np.ndarray   # uint64, one per word, row after row
    offsets: np.ndarray  # int64, the words of row r are hashes[offsets[r]:offsets[r + 1]]

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def _as_array(texts) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    elif not isinstance(texts, pa.Array):
        texts = pa.array(texts, pa.string())
    return pc.fill_null(texts, "") if texts.null_count else texts


def _words(texts: pa.Array) -> _Words:
    """The words of every text, as the match form has them, hashed."""
    lowered = pc.utf8_lower(texts)
    n = len(lowered)
    _validity, offsets_buffer, data_buffer = lowered.buffers()[:3]
    kind = np.dtype(np.int64 if pa.types.is_large_string(lowered.type) else np.int32)
    offsets = np.frombuffer(offsets_buffer, kind, n + 1, lowered.offset * kind.itemsize).astype(np.int64)
    base, size = int(offsets[0]), int(offsets[-1] - offsets[0])
    offsets -= base
    if size == 0:
        return _Words(np.zeros(0, np.uint64), np.zeros(n + 1, np.int64))
    data = np.zeros(size + 8, np.uint8)  # room to read 8 bytes from any word's start
    data[:size] = np.frombuffer(data_buffer, np.uint8, size, base)
    word = ((data - np.uint8(97)) < 26) | ((data - np.uint8(48)) < 10)  # a-z, 0-9
    leads = np.flatnonzero(data >= 0xC0)  # the first byte of every non-ASCII character
    if len(leads):
        b0 = data[leads].astype(np.uint32)
        b1, b2, b3 = ((data[leads + k] & 0x3F).astype(np.uint32) for k in (1, 2, 3))
        points = np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | b1,
                          np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                                   ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3))
        letter = _letters_and_digits(np.minimum(points, 0x10FFFF))
        word[leads] = letter
        word[leads + 1] = letter
        three, four = b0 >= 0xE0, b0 >= 0xF0
        word[leads[three] + 2] = letter[three]
        word[leads[four] + 3] = letter[four]
    edges = np.flatnonzero(np.concatenate([word[:1], word[1:] != word[:-1]]))
    starts, ends = edges[0::2], edges[1::2]
    # A word running across the end of one text into the next is two words.
    inner = offsets[1:-1]
    inner = inner[(inner < size) & (inner > 0)]
    split = np.unique(inner[word[inner] & word[inner - 1]])
    if len(split):  # merged in one pass: a stable sort of two sorted runs
        starts = np.sort(np.concatenate([starts, split]), kind="stable")
        ends = np.sort(np.concatenate([ends, split]), kind="stable")
    lengths = ends - starts
    view = np.ndarray((size + 1,), dtype="<u8", buffer=data, strides=(1,))
    hashes = view[starts] & _MASKS[np.minimum(lengths, 8)]
    hashes *= _GOLDEN
    hashes += lengths.astype(np.uint64)
    _fmix(hashes)
    longer = np.flatnonzero(lengths > 8)
    done = 8
    while len(longer):
        chunk = view[starts[longer] + done] & _MASKS[np.minimum(lengths[longer] - done, 8)]
        hashes[longer] = _fmix(hashes[longer] * _GOLDEN + chunk)
        done += 8
        longer = longer[lengths[longer] > done]
    return _Words(hashes, np.searchsorted(starts, offsets).astype(np.int64))


def _sequence_hashes(words: _Words) -> np.ndarray:
    """One hash per text of its words in order: equal exactly when the match forms are."""
    counts = words.counts
    position = np.arange(len(words.hashes), dtype=np.int64) - np.repeat(words.offsets[:-1], counts)
    mixed = _fmix(words.hashes ^ (position.astype(np.uint64) * _GOLDEN))
    running = np.concatenate([np.zeros(1, np.uint64), np.cumsum(mixed, dtype=np.uint64)])
    total = running[words.offsets[1:]] - running[words.offsets[:-1]]
    return _fmix(total ^ counts.astype(np.uint64))


def _ngrams(words: _Words) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every run of :data:`NGRAM` words inside one text (a polynomial of the
    word hashes, from running sums), and the index of its first word."""
    hashes = words.hashes
    span = len(hashes) - NGRAM + 1
    if span <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    def powers(base):  # base ** k for every word's k, wrapping around 2**64
        return np.concatenate([np.ones(1, np.uint64), np.cumprod(np.full(len(hashes) - 1, base, np.uint64))])

    running = np.concatenate([np.zeros(1, np.uint64), np.cumsum(hashes * powers(_GRAM_BASE_INVERSE))])
    row_end = np.repeat(words.offsets[1:], words.counts)[:span]
    first = np.flatnonzero(np.arange(span) + NGRAM <= row_end)
    return _fmix((running[first + NGRAM] - running[first]) * powers(_GRAM_BASE)[first]), first


def _subset(words: _Words, rows: np.ndarray) -> _Words:
    """The words of the texts ``rows`` only."""
    counts = words.counts[rows]
    return _Words(words.hashes[_segment_ranges(words.offsets[rows], counts)],
                  np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def _find(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of every value in the sorted ``keys``, -1 where absent."""
    if len(keys) == 0 or len(values) == 0:
        return np.full(len(values), -1, np.int64)
    at = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return np.where(keys[at] == values, at, -1)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (``np.unique`` hashes first, which costs more here)."""
    values = np.sort(values)
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _segment_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _word_sets(words: _Words, rows: np.ndarray, vocabulary: pa.Array, weights: np.ndarray,
               unknown_weight: float):
    """For the texts ``rows``: their distinct known words as vocabulary ranks (rarest
    first, row after row: ``row_of``, ``rank``) and each text's weight, words the
    vocabulary does not hold counting :data:`unknown_weight` each."""
    picked = _segment_ranges(words.offsets[rows], words.counts[rows])
    row_of = np.repeat(np.arange(len(rows), dtype=np.int64), words.counts[rows])
    hashes = words.hashes[picked]
    ranks = pc.fill_null(pc.index_in(pa.array(hashes, pa.uint64()), value_set=vocabulary), -1)
    ranks = ranks.to_numpy(zero_copy_only=False).astype(np.int64)
    known = ranks >= 0
    keys = _distinct(row_of[known] * len(vocabulary) + ranks[known])
    row_of_known, rank = np.divmod(keys, len(vocabulary))
    unknown = np.unique(np.stack([row_of[~known].astype(np.uint64), hashes[~known]]), axis=1)[0].astype(np.int64)
    unknown = np.bincount(unknown, minlength=len(rows))
    total = np.bincount(row_of_known, weights[rank], minlength=len(rows)) + unknown_weight * unknown
    return row_of_known, rank, total, np.bincount(row_of_known, minlength=len(rows)) + unknown


def _prefixes(row_of: np.ndarray, rank: np.ndarray, weights: np.ndarray, total: np.ndarray):
    """Which words of each set are in its prefix, and the weight of each word with those
    after it (its suffix). Two sets with weighted Jaccard >= t have their rarest common word
    in both prefixes: the words (rarest first) before what is left weighs less than t times
    the set, and before fewer than MIN_SHARED words are left."""
    w = weights[rank]
    last = np.flatnonzero(np.diff(row_of, append=-1))
    ends = np.repeat(last + 1, np.diff(last, prepend=-1))
    running = np.cumsum(w)
    suffix = running[ends - 1] - running + w
    in_prefix = (suffix >= JACCARD * total[row_of] * (1 - _EPS)) & (ends - np.arange(len(rank)) >= MIN_SHARED)
    return in_prefix, suffix


class Matches(NamedTuple):
    """Per text: the matched evaluation entry (-1: none), the rule (index of
    :data:`RULE_NAMES`) and the similarity (1.0 but for ``jaccard``)."""
    entry: np.ndarray
    rule: np.ndarray
    score: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        return self.entry >= 0


class EvalIndex:
    """The evaluation texts in the forms the rules compare; build it with :meth:`build`,
    send it as :meth:`to_bytes` and read it back with :meth:`from_bytes`."""

    _ARRAYS = ("entry_set", "id_offsets", "id_data", "exact_hash", "exact_entry", "gram_hash",
               "gram_entry", "vocabulary", "weights", "jac_entry", "jac_offsets", "jac_rank",
               "jac_total", "post_offsets", "post_item", "post_suffix")

    def __init__(self, evalsets: list[str], texts: int, arrays: dict[str, np.ndarray]):
        self.evalsets = evalsets
        self.texts = texts
        for name in self._ARRAYS:
            setattr(self, name, arrays[name])
        self.unknown_weight = math.log1p(texts)
        self._vocabulary = pa.array(self.vocabulary, pa.uint64())
        self._bloom = None  # made when first needed: the process that builds the index never matches

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str, str]]) -> EvalIndex:
        """The index of ``(evaluation set, id, text)`` triples; texts without a word are
        left out. The order of the triples does not matter."""
        sets, ids, hashes, counts, batch = [], [], [], [], []

        def flush():
            words = _words(_as_array([text for _s, _i, text in batch]))
            keep = words.counts > 0
            for evalset, entry_id, _text in (item for item, kept in zip(batch, keep) if kept):
                sets.append(evalset)
                ids.append(entry_id)
            hashes.append(words.hashes)
            counts.append(words.counts[keep])
            batch.clear()

        for entry in entries:
            batch.append(entry)
            if len(batch) == 1 << 15:
                flush()
        if batch:
            flush()
        names = sorted(set(sets))
        number = {name: n for n, name in enumerate(names)}
        set_of = [number[evalset] for evalset in sets]
        # Entries in (evaluation set, id) order: the first of several matches is reported.
        order = sorted(range(len(ids)), key=lambda k: (set_of[k], ids[k]))
        counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        picked = _segment_ranges(offsets[order], counts[order])
        words = _Words(flat[picked], np.concatenate([[0], np.cumsum(counts[order])]).astype(np.int64))
        id_bytes = [ids[k].encode("utf-8") for k in order]
        arrays = {"entry_set": np.array([set_of[k] for k in order], np.int32),
                  "id_offsets": np.concatenate([[0], np.cumsum([len(b) for b in id_bytes])]).astype(np.int64),
                  "id_data": np.frombuffer(b"".join(id_bytes), np.uint8)}
        arrays.update(_exact_and_grams(words))
        arrays.update(_jaccard_sets(words))
        return cls(names, len(order), arrays)

    def describe(self, entry: int) -> tuple[str, str]:
        """The evaluation set and id of an entry."""
        start, end = self.id_offsets[entry], self.id_offsets[entry + 1]
        return self.evalsets[self.entry_set[entry]], bytes(self.id_data[start:end]).decode("utf-8")

    def sizes(self) -> dict[str, int]:
        """The number of texts of each evaluation set."""
        counts = np.bincount(self.entry_set, minlength=len(self.evalsets))
        return {name: int(count) for name, count in zip(self.evalsets, counts)}

    def match(self, texts) -> Matches:
        """The first rule each text of a string column (array, chunked array or list)
        matches, and with which evaluation entry."""
        # A text repeated in a column (MS MARCO's query and passage in each of its
        # triplets) is matched once.
        encoded = _as_array(texts).dictionary_encode()
        unique = self._match(encoded.dictionary)
        at = encoded.indices.to_numpy(zero_copy_only=False)
        return Matches(unique.entry[at], unique.rule[at], unique.score[at])

    def _match(self, texts: pa.Array) -> Matches:
        n = len(texts)
        entry, rule, score = np.full(n, -1, np.int64), np.zeros(n, np.int8), np.ones(n, np.float64)
        words = _words(texts)
        counts = words.counts
        gram_rows, gram_entries = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if len(self.gram_hash) and counts.max(initial=0) >= NGRAM:
            gram_rows, gram_entries = self._ngram_hits(words)
        # A text of NGRAM words or more equal to an evaluation text shares its n-grams.
        check = np.union1d(np.flatnonzero((counts > 0) & (counts < NGRAM)), gram_rows)
        found = _find(self.exact_hash, _sequence_hashes(_subset(words, check)))
        entry[check[found >= 0]] = self.exact_entry[found[found >= 0]]
        fresh = entry[gram_rows] < 0
        entry[gram_rows[fresh]], rule[gram_rows[fresh]] = gram_entries[fresh], 1
        short = np.flatnonzero((entry < 0) & (counts >= MIN_SHARED) & (counts <= MAX_WORDS))
        if len(short) and len(self.jac_entry):
            rows, best, similarity = self._jaccard(words, short)
            entry[rows], rule[rows], score[rows] = best, 2, similarity
        return Matches(entry, rule, score)

    def _ngram_hits(self, words: _Words) -> tuple[np.ndarray, np.ndarray]:
        """Texts sharing an n-gram with an evaluation text, and the entry of the first."""
        if self._bloom is None:  # the Bloom filter spares most n-grams a binary search
            bits = max(4, math.ceil(math.log2(max(2, len(self.gram_hash)) / 2)))
            self._bloom = (bits, np.zeros(1 << bits, np.uint64))
            np.bitwise_or.at(self._bloom[1], *_bloom_probe(self.gram_hash, bits))
        grams, first = _ngrams(words)
        word, mask = _bloom_probe(grams, self._bloom[0])
        maybe = np.flatnonzero((self._bloom[1][word] & mask) == mask)
        at = _find(self.gram_hash, grams[maybe])
        rows = np.searchsorted(words.offsets, first[maybe[at >= 0]], side="right") - 1
        rows, firsts = np.unique(rows, return_index=True)
        return rows, self.gram_entry[at[at >= 0][firsts]]

    def _jaccard(self, words: _Words, rows: np.ndarray):
        """Rows among ``rows`` whose word set is near an evaluation text's: candidates from
        the prefixes' postings, then their weighted Jaccard similarity counted exactly."""
        row_of, rank, total, sizes = _word_sets(words, rows, self._vocabulary, self.weights, self.unknown_weight)
        in_prefix, suffix = _prefixes(row_of, rank, self.weights, total)
        probe = np.flatnonzero(in_prefix & (sizes[row_of] >= MIN_SHARED))
        lengths = self.post_offsets[rank[probe] + 1] - self.post_offsets[rank[probe]]
        hits = _segment_ranges(self.post_offsets[rank[probe]], lengths)
        hit_rows, items = np.repeat(row_of[probe], lengths), self.post_item[hits]
        # The first common word bounds the weight the two sets can share from above.
        bound = np.minimum(np.repeat(suffix[probe], lengths), self.post_suffix[hits])
        ok = bound >= JACCARD / (1 + JACCARD) * (total[hit_rows] + self.jac_total[items]) * (1 - _EPS)
        cand_row, cand_item = np.divmod(_distinct(hit_rows[ok] * len(self.jac_entry) + items[ok]), len(self.jac_entry))
        starts = self.jac_offsets[cand_item]
        lengths = self.jac_offsets[cand_item + 1] - starts
        item_ranks = self.jac_rank[_segment_ranges(starts, lengths)]
        pair_of = np.repeat(np.arange(len(cand_row)), lengths)
        vocabulary_size = len(self.vocabulary)
        present = _find(row_of * vocabulary_size + rank, cand_row[pair_of] * vocabulary_size + item_ranks) >= 0
        shared = np.bincount(pair_of[present], minlength=len(cand_row))
        common = np.bincount(pair_of[present], self.weights[item_ranks[present]], minlength=len(cand_row))
        similarity = common / np.maximum(total[cand_row] + self.jac_total[cand_item] - common, 1e-300)
        good = np.flatnonzero((similarity >= JACCARD * (1 - _EPS)) & (shared >= MIN_SHARED))
        item_entry = self.jac_entry[cand_item[good]]
        order = np.lexsort((item_entry, -similarity[good], cand_row[good]))
        matched_rows, first = np.unique(cand_row[good][order], return_index=True)
        return rows[matched_rows], item_entry[order][first], similarity[good][order][first]

    def to_bytes(self) -> bytes:
        """The index as bytes: the same bytes for the same evaluation texts."""
        meta = {"evalsets": self.evalsets, "texts": self.texts, "rules": RULES, "arrays": []}
        parts, offset = [], 0
        for name in self._ARRAYS:
            array = np.ascontiguousarray(getattr(self, name))
            meta["arrays"].append([name, array.dtype.str, len(array), offset])
            raw = array.tobytes()
            parts.append(raw + b"\0" * (-len(raw) % 8))
            offset += len(parts[-1])
        header = json.dumps(meta, sort_keys=True).encode("utf-8")
        header += b" " * (-len(header) % 8)
        payload = len(header).to_bytes(8, "little") + header + b"".join(parts)
        return _MAGIC + hashlib.sha256(payload).digest() + payload

    @staticmethod
    def key_of(data: bytes) -> bytes:
        """What tells two serialised indexes apart, read without decoding them."""
        return bytes(data[len(_MAGIC):len(_MAGIC) + 32])

    @classmethod
    def from_bytes(cls, data: bytes) -> EvalIndex:
        if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[:len(_MAGIC)]) != _MAGIC:
            raise ValueError("not a serialised evaluation index")
        start = len(_MAGIC) + 32
        size = int.from_bytes(data[start:start + 8], "little")
        meta = json.loads(bytes(data[start + 8:start + 8 + size]))
        if meta["rules"] != RULES:
            raise ValueError("the evaluation index was built with other rules")
        base = start + 8 + size
        arrays = {name: np.frombuffer(data, np.dtype(dtype), length, base + offset)
                  for name, dtype, length, offset in meta["arrays"]}
        return cls(meta["evalsets"], meta["texts"], arrays)


def _exact_and_grams(words: _Words) -> dict[str, np.ndarray]:
    """Sorted sequence and n-gram hashes of the entries, each with the first entry that has
    it (``np.unique`` gives the first occurrence, and entries never decrease along them)."""
    exact_hash, first = np.unique(_sequence_hashes(words), return_index=True)
    grams, start = _ngrams(words)
    gram_hash, first_gram = np.unique(grams, return_index=True)
    return {"exact_hash": exact_hash, "exact_entry": first.astype(np.int64), "gram_hash": gram_hash,
            "gram_entry": np.searchsorted(words.offsets, start[first_gram], side="right") - 1}


def _jaccard_sets(words: _Words) -> dict[str, np.ndarray]:
    """The vocabulary (rarest word first) with its weights, the word sets of the entries
    the ``jaccard`` rule applies to, and the postings of their prefixes."""
    texts = len(words.counts)
    function_words = _words(pa.array(list(FUNCTION_WORDS))).hashes
    # np.unique would sort every word; a hash table, then a sort of the distinct words, costs less.
    encoded = pa.array(np.concatenate([words.hashes, function_words])).dictionary_encode()
    vocabulary = encoded.dictionary.to_numpy()
    size = len(vocabulary)
    by_hash = np.argsort(vocabulary)
    vocabulary, word_id = vocabulary[by_hash], np.argsort(by_hash)[encoded.indices.to_numpy()]
    entry_of, word_id = np.divmod(_distinct(np.repeat(np.arange(texts, dtype=np.int64), words.counts) * size
                                            + word_id[:len(words.hashes)]), size)
    df = np.bincount(word_id, minlength=size)
    weights = np.log1p(texts / np.maximum(df, 1))
    function = np.zeros(size, bool)
    function[np.searchsorted(vocabulary, function_words)] = True
    weights[function] = np.minimum(weights[function], FUNCTION_WORD_SHARE * math.log1p(texts))
    topic = ~function & (df <= max(1, int(texts * TOPIC_SHARE)))
    # Topic words first: the rarest word two texts share is then a topic word when they
    # share one, and only topic words need postings.
    by_rank = np.lexsort((vocabulary, -weights, ~topic))
    vocabulary, weights = vocabulary[by_rank], weights[by_rank]
    rank_of = np.empty(size, np.int64)
    rank_of[by_rank] = np.arange(size)
    rank = rank_of[word_id]
    sizes = np.bincount(entry_of, minlength=texts)
    eligible = (words.counts <= MAX_WORDS) & (sizes >= MIN_SHARED)
    keep = eligible[entry_of]
    keys = np.sort(entry_of[keep] * len(vocabulary) + rank[keep])
    entry_of, rank = np.divmod(keys, len(vocabulary))
    jac_entry, item_of = np.unique(entry_of, return_inverse=True)
    total = np.bincount(item_of, weights[rank], minlength=len(jac_entry))
    in_prefix, suffix = _prefixes(item_of, rank, weights, total)
    in_prefix &= rank < topic.sum()
    postings = np.lexsort((item_of[in_prefix], rank[in_prefix]))
    return {"vocabulary": vocabulary, "weights": weights, "jac_entry": jac_entry,
            "jac_offsets": np.concatenate([[0], np.cumsum(np.bincount(item_of, minlength=len(jac_entry)))]),
            "jac_rank": rank, "jac_total": total,
            "post_offsets": np.searchsorted(rank[in_prefix][postings], np.arange(len(vocabulary) + 1)),
            "post_item": item_of[in_prefix][postings], "post_suffix": suffix[in_prefix][postings]}


def _bloom_probe(keys: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The word of a blocked Bloom filter of ``1 << bits`` words that each hash sets, and
    its two bits in it (a word for two keys: about 0.5% false positives)."""
    one = _U64(1)
    return keys >> _U64(64 - bits), (one << (keys & _U64(63))) | (one << ((keys >> _U64(6)) & _U64(63)))
