// The group APIs on the wire at versions the interop clients do not use (flexible v4–v9 forms,
// batched FindCoordinator v4 / LeaveGroup v3+ / OffsetFetch v8, legacy v0–v1), framed with the
// listener's own codec over a real socket to the in-process listener.
import t from 'tap';
import net from 'node:net';
import type { ApiHandler } from '../../../host/kafka/apis/types.js';
import { encodeToBuffer, decode, Reader, Writer } from '../../../host/kafka/protocol/codec.js';
import { groupApis } from '../../../host/kafka/apis/groups/index.js';
import { tempDir } from '../../helpers/index.js';
import { startStack } from '../../interop/kafka-groups-stack.js';

const api = (name: string) => groupApis.find((h) => h.name === name)!;

/** A minimal Kafka connection: frames out, responses matched by correlation id. */
class Conn {
  private buf = Buffer.alloc(0);
  private next = 1;
  private readonly waiting = new Map<number, (body: Buffer) => void>();
  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const size = this.buf.readInt32BE(0);
        const frame = this.buf.subarray(4, 4 + size);
        this.buf = this.buf.subarray(4 + size);
        const cid = frame.readInt32BE(0);
        this.waiting.get(cid)?.(frame.subarray(4));
        this.waiting.delete(cid);
      }
    });
  }
  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  send(h: ApiHandler, version: number, body: object): Promise<any> {
    const flexible = version >= h.flexibleFrom;
    const cid = this.next++;
    const w = new Writer();
    w.int16(h.apiKey);
    w.int16(version);
    w.int32(cid);
    w.string('wire-test', false);
    if (flexible) w.uvarint(0);
    const header = Buffer.concat(w.finish());
    const payload = encodeToBuffer(h.request, body, version, flexible);
    const size = Buffer.alloc(4);
    size.writeInt32BE(header.length + payload.length, 0);
    const answer = new Promise<Buffer>((resolve) => this.waiting.set(cid, resolve));
    this.socket.write(Buffer.concat([size, header, payload]));
    return answer.then((b) => {
      const r = new Reader(b);
      if (flexible) r.uvarint();
      return decode(h.response, r, version, flexible);
    });
  }
  close() {
    this.socket.destroy();
  }
}

t.test('group APIs over the wire: flexible, batched and legacy versions', async (t) => {
  const stack = await startStack(t, await tempDir(t, 'tributary-group-wire-'));
  await stack.broker.createTopic('events', 2);
  const c = await Conn.open(stack.port);
  const other = await Conn.open(stack.port);
  t.teardown(() => {
    c.close();
    other.close();
  });

  const fc4 = await c.send(api('FindCoordinator'), 4, { keyType: 0, coordinatorKeys: ['g', 'h'] });
  t.same(fc4.coordinators.map((x: { key: string; port: number; errorCode: number }) => [x.key, x.port, x.errorCode]), [
    ['g', stack.port, 0],
    ['h', stack.port, 0],
  ]);
  const fcTxn = await c.send(api('FindCoordinator'), 1, { key: 'tx', keyType: 1 });
  t.equal(fcTxn.errorCode, 42, 'no transaction coordinator: INVALID_REQUEST');
  const fc0 = await c.send(api('FindCoordinator'), 0, { key: 'g' });
  t.same([fc0.errorCode, fc0.host, fc0.port], [0, '127.0.0.1', stack.port]);

  const protocols = [{ name: 'range', metadata: Buffer.from('meta') }];
  const joinReq = { groupId: 'g', sessionTimeoutMs: 5000, rebalanceTimeoutMs: 5000, memberId: '', groupInstanceId: null, protocolType: 'consumer', protocols, reason: 'test' };
  const first = await c.send(api('JoinGroup'), 9, joinReq);
  t.equal(first.errorCode, 79, 'MEMBER_ID_REQUIRED');
  t.match(first.memberId, /^wire-test-/);
  const joining = c.send(api('JoinGroup'), 9, { ...joinReq, memberId: first.memberId });
  // The parked JoinGroup does not hold up another connection.
  const listed = await other.send(api('ListGroups'), 4, { statesFilter: [] });
  t.same(listed.groups, [{ groupId: 'g', protocolType: 'consumer', groupState: 'PreparingRebalance' }]);
  const joined = await joining;
  t.same([joined.errorCode, joined.generationId, joined.protocolType, joined.protocolName, joined.leader, joined.skipAssignment], [0, 1, 'consumer', 'range', first.memberId, false]);
  t.equal(Buffer.from(joined.members[0].metadata).toString(), 'meta');

  const bad = await c.send(api('SyncGroup'), 5, { groupId: 'g', generationId: 1, memberId: first.memberId, protocolType: 'consumer', protocolName: 'roundrobin', assignments: [] });
  t.equal(bad.errorCode, 23, 'SyncGroup v5 checks the protocol name');
  const synced = await c.send(api('SyncGroup'), 5, {
    groupId: 'g', generationId: 1, memberId: first.memberId, protocolType: 'consumer', protocolName: 'range',
    assignments: [{ memberId: first.memberId, assignment: Buffer.from('mine') }],
  });
  t.same([synced.errorCode, synced.protocolName, Buffer.from(synced.assignment).toString()], [0, 'range', 'mine']);
  t.equal((await c.send(api('Heartbeat'), 4, { groupId: 'g', generationId: 1, memberId: first.memberId, groupInstanceId: null })).errorCode, 0);
  t.equal((await c.send(api('Heartbeat'), 0, { groupId: 'g', generationId: 2, memberId: first.memberId })).errorCode, 22, 'ILLEGAL_GENERATION');

  const commit = await c.send(api('OffsetCommit'), 8, {
    groupId: 'g', generationIdOrMemberEpoch: 1, memberId: first.memberId, groupInstanceId: null,
    topics: [{ name: 'events', partitions: [{ partitionIndex: 0, committedOffset: 5, committedLeaderEpoch: 0, committedMetadata: 'x' }, { partitionIndex: 9, committedOffset: 1, committedMetadata: null }] }],
  });
  t.same(commit.topics[0].partitions.map((p: { errorCode: number }) => p.errorCode), [0, 3]);
  const commitV2 = await c.send(api('OffsetCommit'), 2, {
    groupId: 'g', generationIdOrMemberEpoch: 1, memberId: first.memberId, retentionTimeMs: 1000,
    topics: [{ name: 'events', partitions: [{ partitionIndex: 1, committedOffset: 2, committedMetadata: null }] }],
  });
  t.equal(commitV2.topics[0].partitions[0].errorCode, 0);

  const fetch8 = await c.send(api('OffsetFetch'), 8, { groups: [{ groupId: 'g', topics: null }, { groupId: 'none', topics: [{ name: 'events', partitionIndexes: [0] }] }], requireStable: false });
  const g = fetch8.groups[0];
  t.same(g.topics[0].partitions.map((p: { partitionIndex: number; committedOffset: number; metadata: string }) => [p.partitionIndex, p.committedOffset, p.metadata]), [
    [0, 5, 'x'],
    [1, 2, ''],
  ]);
  t.same(fetch8.groups[1].topics[0].partitions[0].committedOffset, -1);
  const fetch1 = await c.send(api('OffsetFetch'), 1, { groupId: 'g', topics: [{ name: 'events', partitionIndexes: [0, 1] }] });
  t.same(fetch1.topics[0].partitions.map((p: { committedOffset: number }) => p.committedOffset), [5, 2]);

  const described = await c.send(api('DescribeGroups'), 5, { groups: ['g', 'missing'], includeAuthorizedOperations: false });
  t.same([described.groups[0].groupState, described.groups[0].protocolData, described.groups[0].members[0].clientId], ['Stable', 'range', 'wire-test']);
  t.equal(Buffer.from(described.groups[0].members[0].memberAssignment).toString(), 'mine');
  t.same([described.groups[1].groupState, described.groups[1].errorCode], ['Dead', 0]);

  const left = await c.send(api('LeaveGroup'), 5, { groupId: 'g', members: [{ memberId: first.memberId, groupInstanceId: null, reason: 'done' }, { memberId: 'ghost', groupInstanceId: null }] });
  t.same([left.errorCode, left.members.map((m: { errorCode: number }) => m.errorCode)], [0, [0, 25]]);
  const leftV0 = await c.send(api('LeaveGroup'), 0, { groupId: 'g', memberId: 'ghost' });
  t.equal(leftV0.errorCode, 25, 'v0 reports the member error at the top level');

  const deleted = await c.send(api('DeleteGroups'), 2, { groupsNames: ['g', 'missing'] });
  t.same(deleted.results.map((r: { groupId: string; errorCode: number }) => [r.groupId, r.errorCode]), [
    ['g', 0],
    ['missing', 69],
  ]);
  const badSession = await c.send(api('JoinGroup'), 0, { groupId: 'g2', sessionTimeoutMs: 10, memberId: '', protocolType: 'consumer', protocols });
  t.equal(badSession.errorCode, 26, 'INVALID_SESSION_TIMEOUT');
  const badId = await c.send(api('JoinGroup'), 5, { ...joinReq, groupId: '' });
  t.equal(badId.errorCode, 24, 'INVALID_GROUP_ID');
});
