// Purpose: the `cluster` config section's own rules (host/cluster/options.ts): voters as a list or
// one comma-separated string, each entry id@host:port (IPv6 in brackets), every refusal naming
// the key and the entry; no cluster when nodeId and voters are both unset; the cross-key rules
// (nodeId among voters, listen's port is this node's, heartbeat below election, backoff order,
// a queue that holds one frame).
import t from 'tap';
import { defaultClusterOptions, parseVoters, resolveClusterOptions, type ClusterOptions } from '../../../host/cluster/options.js';

const V = '1@10.0.0.1:9093, 2@10.0.0.2:9093,3@[fd00::3]:9093';
const opts = (o: Partial<ClusterOptions>): ClusterOptions => ({ ...defaultClusterOptions, ...o });

t.test('cluster options: voters as a list or one comma-separated string', async (t) => {
  const want = [
    { id: 1, address: { host: '10.0.0.1', port: 9093 } },
    { id: 2, address: { host: '10.0.0.2', port: 9093 } },
    { id: 3, address: { host: 'fd00::3', port: 9093 } },
  ];
  t.same(parseVoters(V), want);
  t.same(parseVoters(['1@10.0.0.1:9093', '2@10.0.0.2:9093', '3@[fd00::3]:9093']), want);
  t.same(parseVoters(''), []);
  for (const [bad, msg] of [
    ['x@h:1', /cluster\.voters entry "x@h:1" must be id@host:port with an integer id ≥ 1/],
    ['0@h:1', /integer id ≥ 1/],
    ['1@h', /cluster\.voters "h" must be host:port/],
    ['1@h:0', /port from 1 to 65535/],
    ['1@h:65536', /port from 1 to 65535/],
    ['1@h:1,1@g:2', /names node 1 twice/],
  ] as const) t.throws(() => parseVoters(bad), msg, bad);
  t.same(parseVoters('1@h:65535')[0]!.address.port, 65535, 'the highest port is accepted');
});

t.test('cluster options: unset is no cluster; the cross-key rules name both keys', async (t) => {
  t.equal(resolveClusterOptions(defaultClusterOptions), null, 'defaults: a single node');
  const ok = resolveClusterOptions(opts({ nodeId: 2, listen: '0.0.0.0:9093', voters: V }))!;
  t.equal(ok.nodeId, 2);
  t.same(ok.listen, { host: '0.0.0.0', port: 9093 });
  t.throws(() => resolveClusterOptions(opts({ voters: V })), /cluster\.nodeId must be set/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1 })), /cluster\.voters must list every voter/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 4, listen: 'h:9093', voters: V })), /cluster\.nodeId 4 is not among cluster\.voters \(1, 2, 3\)/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1, voters: V })), /cluster\.listen must be set/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1, listen: 'h:9094', voters: V })), /cluster\.listen port 9094 differs/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1, listen: 'h:9093', voters: V, heartbeatTicks: 10, electionTicks: 10 })), /cluster\.heartbeatTicks \(10\) must be below cluster\.electionTicks \(10\)/);
  t.ok(resolveClusterOptions(opts({ nodeId: 1, listen: 'h:9093', voters: V, heartbeatTicks: 9, electionTicks: 10 })), 'one below is fine');
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1, listen: 'h:9093', voters: V, reconnectBackoffMsMin: 5, reconnectBackoffMsMax: 4 })), /reconnectBackoffMsMin \(5\) must not exceed cluster\.reconnectBackoffMsMax \(4\)/);
  t.throws(() => resolveClusterOptions(opts({ nodeId: 1, listen: 'h:9093', voters: V, sendQueueBytesMax: 1023, frameBytesMax: 1024 })), /sendQueueBytesMax \(1023\) must hold at least one frame of cluster\.frameBytesMax \(1024\)/);
});
