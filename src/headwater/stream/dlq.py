"""The stream's dead-letter queue: a log topic, so letters commit with the offsets that consumed them.

``replay`` re-appends letters' original payloads to the input topic. Replaying everything is itself
a consumer (group ``dlq-replay``) whose position commits in the same transaction as the re-appended
events, so each letter is replayed once even across crashes. A replayed event goes through the whole
processor again: if still invalid it is dead-lettered again; if older than the allowed lateness it
goes to the late-events topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from headwater.errors import ConfigError
from headwater.resilience.dlq import DeadLetter
from headwater.stream.log import CUSTOMER_EVENTS, DEAD_LETTERS, Committed, EventLog, Record, iter_topic

REPLAY_GROUP = "dlq-replay"


class LogDeadLetterQueue:
    """:class:`~headwater.resilience.dlq.DeadLetterQueue` stored in an :class:`EventLog` topic."""

    def __init__(self, log: EventLog, topic: str = DEAD_LETTERS) -> None:
        self.log = log
        self.topic = topic

    def put(self, letters: Sequence[DeadLetter]) -> None:
        with self.log.transaction() as tx:
            tx.append(self.topic, [Record(letter.key, letter.to_json()) for letter in letters])

    def list(self, limit: int = 100) -> list[DeadLetter]:
        out = []
        for rec in iter_topic(self.log, self.topic):
            out.append(DeadLetter.from_json(rec.value))
            if len(out) >= limit:
                break
        return out

    def get(self, letter_id: str) -> DeadLetter | None:
        for rec in iter_topic(self.log, self.topic):
            letter = DeadLetter.from_json(rec.value)
            if letter.letter_id == letter_id:
                return letter
        return None

    def count(self) -> int:
        return sum(1 for _ in iter_topic(self.log, self.topic))

    def replay(self, letter_ids: Sequence[str] = (), *, target: str = CUSTOMER_EVENTS) -> int:
        """Re-append letters to ``target``: the given ids, or every letter not yet replayed."""
        if letter_ids:
            wanted = {i: self.get(i) for i in letter_ids}
            missing = [i for i, letter in wanted.items() if letter is None]
            if missing:
                raise ConfigError(f"no dead letter with id {missing[0]!r} (see `headwater dlq list`)")
            with self.log.transaction() as tx:
                tx.append(target, [Record(lt.key, lt.payload) for lt in wanted.values() if lt])
            return len(wanted)
        replayed = 0
        start = {p: c.offset for p, c in self.log.committed(REPLAY_GROUP, self.topic).items()}
        for p in range(self.log.partitions(self.topic)):
            offset = start.get(p, 0)
            while True:
                chunk = self.log.read(self.topic, p, offset, 1000)
                if not chunk:
                    break
                letters = [DeadLetter.from_json(r.value) for r in chunk]
                offset = chunk[-1].offset + 1
                with self.log.transaction() as tx:
                    tx.append(target, [Record(lt.key, lt.payload) for lt in letters])
                    tx.commit_offsets(REPLAY_GROUP, self.topic, {p: Committed(offset)})
                replayed += len(letters)
        return replayed
