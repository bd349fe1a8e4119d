// Purpose: the queue checker (test/helpers/queue-checker.ts) detects each class of its taxonomy
// on small hand-made histories — so a fault test whose verdict is "0 lost, 0 duplicates" could
// have said otherwise: a clean history is valid; one acknowledged value missing from one replica
// is lost; a value read twice is a duplicate; two reads disagreeing on an offset, or a value read
// away from its acknowledged offset, is inconsistent; offsets going backwards within a read are
// non-monotonic; a value nobody sent is unexpected; sent-but-unacknowledged values are counted
// as unseen (absent) or recovered (present) without failing the verdict.
import t from 'tap';
import { checkQueue, describeVerdict, type QueueRead, type ReadRecord } from '../../helpers/queue-checker.js';

const rec = (value: string, partition: number, offset: number): ReadRecord => ({ value, partition, offset });
const clean: ReadRecord[] = [rec('a', 0, 0), rec('b', 0, 1), rec('c', 1, 0)];
const acked = [
  { value: 'a', partition: 0, offset: 0 },
  { value: 'b', partition: 0, offset: 1 },
  { value: 'c', partition: 1 },
];
const sent = ['a', 'b', 'c', 'd'];
const reads = (...rs: ReadRecord[][]): QueueRead[] => rs.map((records, i) => ({ source: `read ${i + 1}`, records }));

t.test('a clean history: valid, every acknowledged value ok, the unacknowledged one unseen', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent, acked, reads: reads(clean, clean) });
  t.ok(v.valid, describeVerdict(v));
  t.match(v.counts, { sent: 4, acked: 3, reads: 2, ok: 3, lost: 0, unseen: 1, recovered: 0, duplicate: 0, inconsistent: 0, nonMonotonic: 0, unexpected: 0 });
});

t.test('lost: acknowledged, missing from one of the reads', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent, acked, reads: reads(clean, [rec('a', 0, 0), rec('c', 1, 0)]) });
  t.notOk(v.valid);
  t.equal(v.counts.lost, 1);
  t.match(v.examples.lost[0], /^b .*absent from read 2/);
  t.equal(checkQueue({ sent, acked, reads: [] }).counts.lost, 3, 'with no read at all, every acknowledged value is lost');
});

t.test('duplicate: one read holds a value at two offsets', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent, acked: acked.slice(0, 2), reads: reads([...clean, rec('b', 0, 2)]) });
  t.notOk(v.valid);
  t.equal(v.counts.duplicate, 1);
  t.match(v.examples.duplicate[0], /b ×2 at 0\/1, 0\/2/);
});

t.test('inconsistent: two reads disagree on an offset, or a value sits away from its acknowledged offset', { timeout: 5000 }, async (t) => {
  const disagree = checkQueue({ sent: ['a', 'b', 'x'], acked: [], reads: reads([rec('a', 0, 0), rec('b', 0, 1)], [rec('a', 0, 0), rec('x', 0, 1)]) });
  t.notOk(disagree.valid);
  t.equal(disagree.counts.inconsistent, 1);
  t.match(disagree.examples.inconsistent[0], /0\/1: read 1 holds b, read 2 holds x/);
  const moved = checkQueue({ sent, acked, reads: reads([rec('a', 0, 0), rec('b', 0, 2), rec('c', 1, 0)]) });
  t.equal(moved.counts.inconsistent, 1, 'acknowledged at 0/1, read at 0/2');
  t.equal(moved.counts.ok, 2);
  const otherPartition = checkQueue({ sent, acked, reads: reads([rec('a', 0, 0), rec('b', 0, 1), rec('c', 0, 2)]) });
  t.equal(otherPartition.counts.inconsistent, 1, 'acknowledged on partition 1, read on partition 0');
});

t.test('non-monotonic: offsets go backwards (or repeat) within a read', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent, acked: [], reads: reads([rec('b', 0, 1), rec('a', 0, 0), rec('c', 1, 0)]) });
  t.notOk(v.valid);
  t.equal(v.counts.nonMonotonic, 1);
  t.match(v.examples.nonMonotonic[0], /partition 0 offset 0 read after 1/);
  t.equal(checkQueue({ sent, acked: [], reads: reads([rec('a', 0, 0), rec('c', 1, 5), rec('b', 0, 1)]) }).counts.nonMonotonic, 0, 'interleaved partitions, each increasing: fine');
});

t.test('unexpected: a read holds a value nobody sent', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent, acked, reads: reads([...clean, rec('zz', 1, 1)]) });
  t.notOk(v.valid);
  t.equal(v.counts.unexpected, 1);
});

t.test('unseen and recovered are counted, not failures', { timeout: 5000 }, async (t) => {
  const v = checkQueue({ sent: [...sent, 'e'], acked, reads: reads([...clean, rec('d', 1, 1)]) });
  t.ok(v.valid, describeVerdict(v));
  t.equal(v.counts.recovered, 1, 'd: no acknowledgement, but present');
  t.equal(v.counts.unseen, 1, 'e: no acknowledgement, absent');
});
