"""The hold-back window of a streamed answer (docs/safety.md, "Streams").

Each text field of each choice (``content``, ``reasoning_content``, the arguments of each
tool call) has its own :class:`FieldGuard`. A new piece of text is appended to what the
guard holds and the whole window is scanned; any new hit must end in the new piece, and a
listed word has at most ``max_len`` normalised characters, so holding back the original
text of the last ``max_len − 1`` normalised characters (with the separators and invisible
characters after them) is enough: a word is never released before it is found, however
the stream is cut. The window also keeps the last released character in front of it, so
the whole-token rule (``matcher.py``) sees the same neighbours as a scan of the whole text.

What is released is held back further when needed:

- a hit whose end check waits for the next character (``a s s`` then ``x``?) is held whole;
- a masked span is never cut: it is released masked, in one piece;
- the window is never cut right after a candidate refused because a letter follows it,
  so the released text never ends on a listed word.

A run of more than ``normalize.BREAK`` removed characters (whitespace, punctuation,
invisible characters) ends every word, so a window that ends with one is released whole:
the window stays short however long a run of spaces the model writes.

A ``block`` hit stops the guard: nothing more of that text is released (the filter ends
the stream with the notice). ``mask`` spans are replaced as :func:`matcher.mask_text`
would replace them in the whole text; ``log`` hits pass.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from relaygate.safety.base import SafetyHit
from relaygate.safety.matcher import CompiledPolicy, Found, mask_spans, mask_text
from relaygate.safety.normalize import BREAK

__all__ = ["FieldGuard", "Step", "StreamGuard"]


@dataclass(slots=True)
class Step:
    """The outcome of one piece: the text to release now, the new hits (offsets in
    ``window``, which starts at absolute offset ``offset`` of the field's whole text) and
    the hit that blocked, if any."""

    released: str = ""
    hits: list[SafetyHit] = field(default_factory=list)
    window: str = ""
    offset: int = 0
    blocked: SafetyHit | None = None


def _key(hit: SafetyHit) -> tuple[int, int, int, str]:
    return (hit.start, hit.end, hit.list_id, hit.word)


class FieldGuard:
    """The window of one text field."""

    __slots__ = (
        "_buf",
        "_deferred",
        "_forbidden",
        "_group",
        "_mask",
        "_masks",
        "_old_norm",
        "_policy",
        "_released",
        "base",
        "stopped",
    )

    def __init__(self, policy: CompiledPolicy, group: str, mask: str) -> None:
        self._policy = policy
        self._group = group
        self._mask = mask
        self._buf = ""  # the last released character (context), then the held text
        self._released = 0  # offset in _buf of the first character not yet released
        self._old_norm = 0  # normalised length of _buf before the newest piece
        self._deferred: set[tuple[int, int, int, str]] = set()
        self._masks: list[tuple[int, int]] = []  # spans of _buf to mask when released
        #: (lo, hi, fallback): never cut in lo..hi (right after a refused candidate)
        self._forbidden: set[tuple[int, int, int]] = set()
        self.base = 0  # absolute offset of _buf[0] in the field's whole text
        self.stopped = False  # a block was found: nothing more is released

    @property
    def held(self) -> str:
        """The original text held back now."""
        return self._buf[self._released :]

    def feed(self, text: str) -> Step:
        if self.stopped:
            return Step()
        self._buf += text
        buf = self._buf
        if len(buf) > BREAK and not self._policy.normalizer(buf[-BREAK - 1 :]):
            # a long run of removed characters ends every word: release everything
            return self.flush()
        return self._step(final=False)

    def flush(self) -> Step:
        """The field ends (its choice finished, or the stream, or a long run of removed
        characters came): decide the deferred hits and release the rest. Text fed
        afterwards starts a fresh window."""
        if self.stopped:
            return Step()
        step = self._step(final=True)
        if not self.stopped:
            self.base += len(self._buf)
            self._buf = ""
            self._released = self._old_norm = 0
            self._deferred.clear()
            self._masks.clear()
            self._forbidden.clear()
        return step

    def _step(self, *, final: bool) -> Step:
        buf = self._buf
        policy = self._policy
        skip = len(policy.normalizer(buf[: self._released])) if self._released else 0
        found = policy.find(buf, self._group, final=final, skip=skip)
        step = Step(window=buf, offset=self.base)
        norm_len = len(found.norm)
        if found.nmap is None:
            self._deferred.clear()
            cut, ctx_start, norm_left = self._tail(final, norm_len)
            if self._forbidden:
                cut = self._adjust(cut)
                ctx_start, norm_left = self._context(cut, norm_len)
        else:
            new = [h for h, ne in found.hits if ne > self._old_norm or _key(h) in self._deferred]
            self._deferred = {_key(h) for h, _, _ in found.deferred}
            for hit in new:
                step.hits.append(hit)
                if hit.action == "block" and step.blocked is None:
                    step.blocked = hit
                elif hit.action == "mask":
                    self._masks.append((hit.start, hit.end))
            if step.blocked is not None:
                self.stopped = True
                return step
            cut = self._adjust(self._cut(found, final))
            ctx_start, norm_left = self._context(cut, norm_len)
        released = buf[self._released : cut]
        if self._masks:
            spans = [(s - self._released, e - self._released) for s, e in self._masks if e <= cut]
            released = mask_text(released, spans, self._mask)
            self._masks = [(s - ctx_start, e - ctx_start) for s, e in self._masks if e > cut]
        if self._forbidden:
            self._forbidden = {
                (lo - ctx_start, hi - ctx_start, fb - ctx_start)
                for lo, hi, fb in self._forbidden
                if hi >= cut
            }
        step.released = released
        if ctx_start:
            self._buf = buf[ctx_start:]
            self.base += ctx_start
            self._deferred = {(s - ctx_start, e - ctx_start, i, w) for s, e, i, w in self._deferred}
        self._released = cut - ctx_start
        self._old_norm = norm_left
        return step

    def _tail(self, final: bool, norm_len: int) -> tuple[int, int, int]:
        """No candidate in the window: hold the original text of the last ``max_len −
        1`` normalised characters. Returns (cut, start of the kept context, normalised
        length of what is kept)."""
        buf = self._buf
        hold = 0 if final else self._policy.max_len - 1
        if hold and norm_len <= hold:  # everything is held (nothing new to release)
            return self._released, 0, norm_len
        normalizer = self._policy.normalizer
        lens = normalizer.lens
        i = len(buf)
        count = 0
        if hold > 0:
            while i > 0:
                i -= 1
                cp = ord(buf[i])
                count += lens[cp] if cp < 0x10000 else normalizer.out_len(buf[i])
                if count >= hold:
                    break
        cut = i
        ctx = cut
        while ctx > 0:
            ctx -= 1
            cp = ord(buf[ctx])
            n = lens[cp] if cp < 0x10000 else normalizer.out_len(buf[ctx])
            if n:
                return cut, ctx, count + n
        return cut, cut, count

    def _cut(self, found: Found, final: bool) -> int:
        """The cut when the window has candidates (the index map is known); a candidate
        refused because a letter follows it forbids cutting right after it."""
        assert found.nmap is not None
        starts = found.nmap.starts
        ends = found.nmap.ends
        n = len(found.norm)
        for ns, ne in found.refused_at:
            self._forbidden.add((ends[ne - 1], starts[ne], starts[ns]))
        k = n if final else max(0, n - (self._policy.max_len - 1))
        for _, ns, _ in found.deferred:
            k = min(k, ns)
        if k >= n:
            return len(self._buf)
        while k > 0 and starts[k - 1] == starts[k]:
            k -= 1  # one original character gave several: hold it whole
        return starts[k]

    def _adjust(self, cut: int) -> int:
        """Move the cut back out of masked spans and forbidden places."""
        spans = mask_spans(self._masks) if self._masks else []
        moved = True
        while moved:
            moved = False
            for s, e in spans:
                if s < cut < e:
                    cut, moved = s, True
            for lo, hi, fb in self._forbidden:
                if lo <= cut <= hi:
                    cut, moved = fb, True
            if cut <= self._released:
                return self._released
        return cut

    def _context(self, cut: int, norm_len: int) -> tuple[int, int]:
        """Where the kept context starts (the last character before ``cut`` that has a
        normal form) and the normalised length of what is kept."""
        buf = self._buf
        normalizer = self._policy.normalizer
        ctx = cut
        while ctx > 0:
            ctx -= 1
            if normalizer.out_len(buf[ctx]):
                return ctx, norm_len - len(normalizer(buf[:ctx]))
        return cut, norm_len - len(normalizer(buf[:cut]))


class StreamGuard:
    """The windows of one streamed answer, by field key (choice index, field name, tool
    call index)."""

    __slots__ = ("_fields", "_group", "_mask", "_policy")

    def __init__(self, policy: CompiledPolicy, group: str, mask: str) -> None:
        self._policy = policy
        self._group = group
        self._mask = mask
        self._fields: dict[Hashable, FieldGuard] = {}

    def field(self, key: Hashable) -> FieldGuard:
        guard = self._fields.get(key)
        if guard is None:
            guard = self._fields[key] = FieldGuard(self._policy, self._group, self._mask)
        return guard

    def feed(self, key: Hashable, text: str) -> Step:
        return self.field(key).feed(text)

    def field_keys(self) -> list[Hashable]:
        return list(self._fields)

    def absolute(self, step: Step) -> list[SafetyHit]:
        """A step's hits with offsets in the field's whole text."""
        return [replace(h, start=h.start + step.offset, end=h.end + step.offset) for h in step.hits]
