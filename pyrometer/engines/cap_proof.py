"""Proof that no cap bit, kept in a few integers per lead.

The batch engine's first pass sums every event's decayed points as if nothing were capped.
That sum is exact for a lead unless some capped rule got more events in one window than
earn the rule's full points. To know which leads need the exact (slower) computation
without grouping by window, each lead keeps one or a few 64-bit *words* and a *tally*:

* every capped rule owns some **bins** in one word, each ``width`` bits wide; an event of
  the rule adds 1 to the bin of its window (window number modulo the rule's bins), so a
  bin counts the events of one or more windows;
* every such addition also adds 1 to the tally ``T``.

Summed over a lead's events (DuckDB sums BIGINTs into a 128-bit integer, so nothing is
lost), a word is ``x = sum_j n_j * 2**pos_j``. Adding a constant ``preload`` of
``2**width - 1 - full`` to every bin makes a bin overflow exactly when it counts more than
``full`` events (the most events of a window that all earn full points). An overflow
carries into the next bin (or out of the word), and every carry lowers the sum of the
bins' digits. So

    sum over words of (digit_sum(bins of x + preload) - digit_sum(preload)) == T

holds if and only if no bin holds more than ``full`` events, hence no window does, hence
the uncapped sum is exact for that lead. The digit sum is a handful of ``bit_count`` calls
(bit ``i`` of every bin at once). Windows that merely share a bin can fail the proof
without a cap binding; such leads are recomputed exactly, which costs time, never
correctness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WORD_BITS = 63
"""Bits for bins in one word: what one event adds stays a positive BIGINT."""
MAX_BINS = 64


@dataclass(frozen=True)
class LimitedRule:
    """What the layout needs to know of a capped rule."""

    rule_id: int
    full: int
    """Events of one window that all earn the rule's full points (0: not even the first)."""
    windowed: bool
    """False when the cap is per lead, not per window: one bin is enough."""
    weight: float = 0.0
    """How many events of this rule the data holds (relative); more get more bins."""


@dataclass(frozen=True)
class RuleBins:
    """Where one limited rule counts its events."""

    rule_id: int
    word: int
    offset: int
    width: int
    bins: int
    full: int

    @property
    def preload(self) -> int:
        """Added to each bin so that it overflows past ``full`` events."""
        return (1 << self.width) - 1 - self.full

    def unit(self, bin_index: int) -> int:
        """What one event in ``bin_index`` adds to its word (the tally gets 1 as well)."""
        return 1 << (self.offset + self.width * bin_index)


def _width(full: int) -> int:
    return max(1, full.bit_length())


@dataclass(frozen=True)
class ProofLayout:
    """Bins of every limited rule, packed into ``words`` words."""

    rules: tuple[RuleBins, ...]
    words: int

    @classmethod
    def plan(cls, limited: Sequence[LimitedRule], words: int = 1) -> ProofLayout:
        """Give each rule at least one bin, then share the remaining bits by weight.

        Rules go to words by weight (the busiest first, each to the least loaded word that
        has room); within a word, free bits go one bin at a time to the windowed rule
        whose bins are the fullest relative to what they may hold.
        """
        order = sorted(limited, key=lambda r: (-r.weight, r.rule_id))
        members: list[list[LimitedRule]] = [[] for _ in range(max(1, words))]
        used = [0] * len(members)
        load = [0.0] * len(members)
        for rule in order:
            width = _width(rule.full)
            room = [i for i in range(len(members)) if used[i] + width <= WORD_BITS]
            if not room:
                members.append([])
                used.append(0)
                load.append(0.0)
                room = [len(members) - 1]
            i = min(room, key=lambda k: (load[k], k))
            members[i].append(rule)
            used[i] += width
            load[i] += rule.weight * width
        members = [m for m in members if m]
        placed: list[RuleBins] = []
        for word, rules in enumerate(members):
            bins = {rule.rule_id: 1 for rule in rules}
            free = WORD_BITS - sum(_width(rule.full) for rule in rules)
            while True:
                growable = [
                    rule
                    for rule in rules
                    if rule.windowed and bins[rule.rule_id] < MAX_BINS and _width(rule.full) <= free
                ]
                if not growable:
                    break
                best = max(
                    growable,
                    key=lambda r: (r.weight / (bins[r.rule_id] * (r.full + 1)), -r.rule_id),
                )
                bins[best.rule_id] += 1
                free -= _width(best.full)
            offset = 0
            for rule in sorted(rules, key=lambda r: r.rule_id):
                width = _width(rule.full)
                placed.append(
                    RuleBins(rule.rule_id, word, offset, width, bins[rule.rule_id], rule.full)
                )
                offset += width * bins[rule.rule_id]
        return cls(tuple(sorted(placed, key=lambda b: b.rule_id)), len(members))

    def of(self, rule_id: int) -> RuleBins | None:
        for rule in self.rules:
            if rule.rule_id == rule_id:
                return rule
        return None

    def in_word(self, word: int) -> list[RuleBins]:
        return [rule for rule in self.rules if rule.word == word]

    def preload(self, word: int) -> int:
        return sum(
            rule.preload << (rule.offset + rule.width * b)
            for rule in self.in_word(word)
            for b in range(rule.bins)
        )

    def digit_masks(self, word: int) -> list[int]:
        """``masks[i]``: bit ``i`` of every bin of the word."""
        members = self.in_word(word)
        widest = max((rule.width for rule in members), default=0)
        return [
            sum(
                1 << (rule.offset + rule.width * b + i)
                for rule in members
                if rule.width > i
                for b in range(rule.bins)
            )
            for i in range(widest)
        ]

    def digit_sum(self, word: int, value: int) -> int:
        """Sum of the bins' values read from ``value`` (Python twin of the SQL)."""
        low = value & ((1 << WORD_BITS) - 1)
        return sum(bin(low & mask).count("1") << i for i, mask in enumerate(self.digit_masks(word)))

    def proven(self, totals: Sequence[int], tally: int) -> bool:
        """Whether a lead's summed words and tally prove that no cap bit."""
        return (
            sum(
                self.digit_sum(w, totals[w] + self.preload(w)) - self.digit_sum(w, self.preload(w))
                for w in range(self.words)
            )
            == tally
        )

    # -- SQL ---------------------------------------------------------------------------

    def proven_sql(self, columns: Sequence[str], tally: str) -> str:
        """SQL twin of :meth:`proven` for HUGEINT ``columns`` (the words' sums)."""
        if not self.words:
            return "TRUE"
        sums = []
        for word, column in enumerate(columns):
            preload = self.preload(word)
            low = f"CAST(({column} + {preload}) & {(1 << WORD_BITS) - 1} AS BIGINT)"
            sums.extend(
                f"(CAST(bit_count({low} & {mask}) AS INTEGER) << {i})"
                for i, mask in enumerate(self.digit_masks(word))
            )
        loaded = sum(self.digit_sum(w, self.preload(w)) for w in range(self.words))
        return f"(({' + '.join(sums)}) - {loaded} = {tally})"
