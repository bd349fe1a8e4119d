// Purpose: the leader's half of the pipelined follower fetch (issue 11). A pipelining follower
// fetches from the end it has written and reports the end its fsync covers apart (Fetch's
// Tributary tag 10000, host/kafka/apis/fetch.ts); the leader must count only that durable end for
// the high watermark (what acks=all answers) and for ISR membership, never the fetch offset, and
// must still count such a follower as caught up when its durable end trails by the fsync in
// flight — but not when its fsync never returns. Pinned over a real partition log; the
// follower's side runs against real processes in cluster-written-power-cut.test.ts.
import t from 'tap';
import { encodeBatch } from '../../../host/core/index.js';
import { decode, encodeToBuffer, Reader } from '../../../host/kafka/protocol/codec.js';
import { fetch, REPLICA_DURABLE_END_TAG } from '../../../host/kafka/apis/fetch.js';
import { nextIsr, type ReplicationOptions } from '../../../host/cluster/replication.js';
import { openBroker, bytes } from '../broker/broker-fixture.js';

const tp = { topic: 'pipe', partition: 0 };
const LAG_MS = 10_000;

/** A leader (node 1) of `tp` with followers 2 and 3 in its ISR, and `records` records appended and fsynced. */
async function leaderWith(t: Parameters<typeof openBroker>[0], records: number) {
  const { broker } = await openBroker(t);
  await broker.createTopic(tp.topic, 1);
  const p = broker.partitionObject(tp);
  p.replicated(1);
  p.becomeLeader(1, [1, 2, 3], [1, 2, 3], 0);
  for (let i = 0; i < records; i++) await p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes(`r${i}`) }]), { leaderEpoch: 1, durable: true });
  return p;
}

t.test('partition: a reported durable end, not the fetch offset, moves the high watermark', { timeout: 20_000 }, async (t) => {
  const p = await leaderWith(t, 5);
  t.equal(p.log.logEndOffset, 5, 'the leader holds 5 records, fsynced');
  p.followerFetched(2, 5, 1, 2);
  p.followerFetched(3, 5, 1, 3);
  t.equal(p.highWatermark, 2, 'both followers wrote all 5, but fsynced only 2 and 3: the HW is 2');
  t.equal(p.followers.get(2)!.logEndOffset, 2, "the follower's log end as the leader counts it is its durable end");
  p.followerFetched(2, 5, 2, 5);
  t.equal(p.highWatermark, 3, 'follower 2 fsynced everything: the HW is follower 3\'s durable end');
  p.followerFetched(3, 4, 3, 9);
  t.equal(p.highWatermark, 4, 'a durable end past the fetch offset counts only up to the fetch offset');
  p.followerFetched(3, 5, 4);
  t.equal(p.highWatermark, 5, 'without a durable end the fetch offset is the log end (a follower that does not pipeline)');
});

t.test('partition: a pipelining follower stays caught up while its durable end trails by its fsync; a stuck fsync leaves the ISR', { timeout: 20_000 }, async (t) => {
  const p = await leaderWith(t, 0);
  const o = { nodeId: 1, replicaLagTimeMaxMs: LAG_MS } as ReplicationOptions;
  const eligible = () => true;
  // Every 100 ms the leader appends one record; follower 2 fetches it at once and reports the
  // previous one fsynced (its fsync runs while its next fetch is out); follower 3 fetches every
  // record too, but its fsync never returns: its durable end stays 0.
  let nowMs = 0;
  for (let i = 0; i < 200; i++) {
    nowMs += 100;
    await p.log.appendAsLeader(encodeBatch([{ key: null, value: bytes(`r${i}`) }]), { leaderEpoch: 1, durable: true });
    p.followerFetched(2, i + 1, nowMs, i);
    p.followerFetched(3, i + 1, nowMs, 0);
  }
  const two = p.followers.get(2)!;
  t.ok(nowMs - two.caughtUpMs <= 200, `follower 2's caught-up time trails by one fetch (${nowMs - two.caughtUpMs} ms): its durable end reached the leader's end as of its previous fetch`);
  t.ok(nowMs - p.followers.get(3)!.caughtUpMs > LAG_MS, 'follower 3 has not been caught up since its fsync stopped, though it keeps fetching');
  t.same(nextIsr(p, [1, 2, 3], o, nowMs, eligible), [1, 2], 'the ISR check drops follower 3 and keeps follower 2');
  t.equal(p.highWatermark, 0, 'and until it does, follower 3 holds the HW at its durable end');
  t.ok(two.leaderEndsAtFetch.length <= 16, `the leader ends kept per follower stay bounded (${two.leaderEndsAtFetch.length})`);
});

t.test('fetch codec: the durable end travels as a tagged field from v12 on; the leader says it reads it', { timeout: 20_000 }, async (t) => {
  const partition = { partition: 0, currentLeaderEpoch: 3, fetchOffset: 120, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1024, replicaDurableEndOffset: 100 };
  const req = { replicaId: 2, maxWaitMs: 500, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1, topics: [{ topic: 't', partitions: [partition] }], forgottenTopicsData: [], rackId: '' };
  const v12 = decode(fetch.request, new Reader(encodeToBuffer(fetch.request, req, 12, true)), 12, true);
  t.equal(v12.topics[0].partitions[0].replicaDurableEndOffset, 100, 'v12: the durable end arrives');
  t.equal(v12.topics[0].partitions[0].fetchOffset, 120, 'next to the fetch offset');
  const v11 = decode(fetch.request, new Reader(encodeToBuffer(fetch.request, req, 11, false)), 11, false);
  t.equal(v11.topics[0].partitions[0].replicaDurableEndOffset, -1, 'v11 has no tagged fields: absent, so the fetch offset counts');
  const absent = encodeToBuffer(fetch.request, { ...req, topics: [{ topic: 't', partitions: [{ ...partition, replicaDurableEndOffset: -1 }] }] }, 12, true);
  t.equal(encodeToBuffer(fetch.request, req, 12, true).length - absent.length, 2 + 1 + 8, `present: tag ${REPLICA_DURABLE_END_TAG} (a 2-byte varint), a length byte and an int64 — absent (-1) costs nothing`);
  const res = { throttleTimeMs: 0, replicaDurableEndSupported: true, errorCode: 0, sessionId: 0, responses: [] };
  t.equal(decode(fetch.response, new Reader(encodeToBuffer(fetch.response, res, 12, true)), 12, true).replicaDurableEndSupported, true, "the leader's answer says it counts durable ends");
  t.equal(decode(fetch.response, new Reader(encodeToBuffer(fetch.response, { ...res, replicaDurableEndSupported: false }, 12, true)), 12, true).replicaDurableEndSupported, false, 'absent: a leader that does not (the follower then does not pipeline)');
});
