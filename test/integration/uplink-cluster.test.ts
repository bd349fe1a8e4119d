// Purpose: the uplink in a cluster (docs/uplink.md, "In a cluster"). Three edge nodes, each with
// the same uplink.* toward one target Tributary process, hold a replicated topic (RF 3, two
// partitions) with a backlog; the uplink forwards each partition only from its leader. The leader
// of partition 0 is killed with kill -9 mid-drain (bandwidth-capped, so the drain takes seconds);
// the controller fences it and elects another leader, whose uplink waits its handover delay and
// resumes from what it reads back from the target. The target (read with kcat) holds every record
// the edge acknowledged exactly once, in order per partition, and the nodes' logs show one
// forwarder per partition at a time; a non-leader's /stats says the partition is led elsewhere.
import t from 'tap';
import { cliJs, eventually, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { startCluster, freePort, type Cluster } from '../helpers/cluster.js';
import { FAST_LINK_SETS, kcatReadAll, metrics, sh, sum, uplinkToolsPresent, verdict } from '../helpers/uplink.js';

const SITE = 'cab1';
const TOPIC = 'telemetry';
const RECORDS = 1500;
const HANDOVER_MS = 3000;

/** FAST_LINK_SETS as startCluster's `set` entries. */
const fastLink = FAST_LINK_SETS.filter((s) => s !== '--set');

interface PartitionRow {
  source: { topic: string; partition: number };
  state: string;
  reason: string | null;
  stalledForSec: number;
}

async function uplinkRows(node: BrokerProcess): Promise<PartitionRow[]> {
  const body = (await (await fetch(`http://${node.listeners.http}/stats`)).json()) as { uplink: { partitions: PartitionRow[] } | null };
  return body.uplink?.partitions ?? [];
}

/** Which node leads each partition of TOPIC, as node `id` sees it. */
async function leaders(cluster: Cluster, id: number): Promise<Map<number, number>> {
  const s = (await cluster.status(id)) as unknown as { partitions: Array<{ topic: string; partition: number; leader: number }> };
  return new Map(s.partitions.filter((p) => p.topic === TOPIC).map((p) => [p.partition, p.leader]));
}

/** The start and stop lines of the cluster gate for one partition, per node, with their times. */
function forwardingSpans(procs: Map<number, BrokerProcess>, partition: number): Array<{ node: number; startMs: number }> {
  const out = [];
  for (const [id, proc] of procs) {
    for (const l of proc.logs) {
      if (l.source === `${TOPIC}-${partition}` && typeof l.msg === 'string' && l.msg.endsWith('forwarding starts')) out.push({ node: id, startMs: Date.parse(String(l.time)) });
    }
  }
  return out.sort((a, b) => a.startMs - b.startMs);
}

/** The target, three edge nodes with the same uplink.* toward it, and TOPIC (2 partitions, RF 3) with RECORDS − 200 acknowledged records per partition. */
async function startEdgeCluster(t: Parameters<typeof startCluster>[0] & { equal: (a: unknown, b: unknown, m: string) => void }, extraSets: string[] = []) {
    const port = await freePort();
    const target = await startBroker(t, { dataDir: await tempDir(t), args: ['--kafka-port', String(port)] });
    const cluster = await startCluster(t, 3, {
      set: [
        `uplink.site=${SITE}`,
        `uplink.bootstrap=127.0.0.1:${port}`,
        `uplink.topics=${TOPIC}`,
        ...fastLink,
        // A drain of a few seconds (~300 KB at 60 KB/s), so the kill lands in the middle of it.
        'uplink.bandwidthBytesPerSec=60000',
        'uplink.bandwidthBurstBytes=8192',
        'uplink.batchRecordsMax=50',
        'uplink.readBytesMax=16384',
        // Short request bounds, so the handover (≥ uplink.requestTimeoutMs) is seconds, not 30 s.
        'uplink.requestTimeoutMs=3000',
        'uplink.produceTimeoutMs=2000',
        `uplink.clusterHandoverMs=${HANDOVER_MS}`,
        // A loaded test machine stalls event loops for hundreds of ms: a longer session and lease
        // keep the leases from lapsing by accident (clusterLeaseMs + 1000 + 200 < sessionTimeoutMs).
        'cluster.sessionTimeoutMs=4000',
        'uplink.clusterLeaseMs=1500',
        ...extraSets,
      ],
    });
    const n1 = cluster.node(1).proc!;
    const created = await fetch(`http://${n1.listeners.http}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: TOPIC, partitions: 2, replicationFactor: 3 }) });
    t.equal(created.status, 200, `${TOPIC} created with 2 partitions at replication factor 3`);
    const value = (p: number, i: number) => `p${p}-${String(i).padStart(5, '0')}-${'x'.repeat(160)}`;
    const expected = [0, 1].map((p) => Array.from({ length: RECORDS }, (_, i) => value(p, i)));
    for (const p of [0, 1]) {
      const r = await sh('kcat', ['-P', '-b', n1.listeners.kafka!, '-t', TOPIC, '-p', String(p), '-X', 'acks=all', '-X', 'batch.num.messages=100'], expected[p].slice(0, RECORDS - 200).join('\n') + '\n');
      t.equal(r.code, 0, `${RECORDS - 200} records acknowledged (acks=all) on partition ${p}: ${r.stderr.slice(0, 200)}`);
    }
  return { target, cluster, n1, expected };
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink in a 3-node cluster: the leader forwards, kill -9 of the leader mid-drain, the new leader takes over: every acknowledged record once, in order', { timeout: 180_000 }, async (t) => {
    const { target, cluster, n1, expected } = await startEdgeCluster(t);
    const before = await leaders(cluster, 1);
    const victim = before.get(0)!;
    t.ok(victim >= 1 && victim <= 3, `partition 0 is led by node ${victim}`);

    // A node that does not lead a partition says so: led elsewhere, no stall alarm.
    const follower = cluster.nodes.find((n) => n.id !== before.get(0) && n.id !== before.get(1)) ?? cluster.nodes.find((n) => n.id !== victim)!;
    const rows = await eventually(async () => {
      const r = await uplinkRows(follower.proc!);
      const p0 = r.find((x) => x.source.partition === 0);
      return p0 && p0.state === 'led-elsewhere' ? r : null;
    }, 15_000, 100);
    const p0row = rows!.find((x) => x.source.partition === 0)!;
    t.same({ state: p0row.state, reason: p0row.reason, stalledForSec: p0row.stalledForSec }, { state: 'led-elsewhere', reason: `led by node ${victim}`, stalledForSec: 0 }, `node ${follower.id}'s /stats: partition 0 led elsewhere (node ${victim}), not stalled`);

    const cliText = await eventually(async () => {
      const r = await sh(process.execPath, [cliJs, 'uplink', 'status', '--data-dir', follower.dataDir]);
      return new RegExp(`${TOPIC}-0\\t\\S+\\tled-elsewhere\\t.*led by node ${victim}`).test(r.stdout) ? r.stdout : Promise.reject(new Error(r.stdout + r.stderr));
    }, 10_000, 200);
    t.match(cliText, /link standby/, 'the link is on standby there (it forwards no partition)');
    t.notMatch(cliText, /STALLED/, `tributary uplink status on node ${follower.id}: led elsewhere, no stall:\n${cliText}`);

    // Mid-drain: the leader has forwarded some of partition 0, not all of it.
    const victimProc = cluster.node(victim).proc!;
    const sentBeforeKill = await eventually(async () => {
      const n = sum(await metrics(victimProc), 'tributary_uplink_records_sent_total', `partition="0"`);
      return n >= 200 ? n : null;
    }, 30_000, 50);
    t.ok(sentBeforeKill! < RECORDS - 200, `node ${victim} forwarded ${sentBeforeKill} of partition 0's ${RECORDS - 200} records when it is killed`);
    // Every node's process (and its logs), the killed one's included.
    const procs = new Map(cluster.nodes.map((n) => [n.id, n.proc!] as const));
    const killedAtMs = Date.now();
    await cluster.kill9(victim);
    const rest = cluster.nodes.filter((n) => n.id !== victim).map((n) => n.id);

    // The controller fences the dead node and elects another leader from the ISR.
    const after = await eventually(async () => {
      const l = await leaders(cluster, rest[0]);
      return rest.includes(l.get(0)!) && rest.includes(l.get(1)!) ? l : null;
    }, 30_000, 100);
    const heir = after!.get(0)!;
    t.pass(`partition 0 now led by node ${heir}`);
    // More records after the failover, acknowledged by the new leaders.
    const survivor = cluster.node(rest[0]).proc!;
    for (const p of [0, 1]) {
      const r = await sh('kcat', ['-P', '-b', survivor.listeners.kafka!, '-t', TOPIC, '-p', String(p), '-X', 'acks=all'], expected[p].slice(RECORDS - 200).join('\n') + '\n');
      t.equal(r.code, 0, `200 more records acknowledged on partition ${p} after the failover: ${r.stderr.slice(0, 200)}`);
    }

    // The target ends up with everything the edge acknowledged, once, in order.
    const targetTopic = `${SITE}.${TOPIC}`;
    const found = await eventually(async () => {
      const all = await kcatReadAll(target.listeners.kafka!, targetTopic);
      const v = [0, 1].map((p) => verdict(all.filter((r) => r.partition === p), { site: SITE, topic: TOPIC, partition: p }, expected[p]));
      return v.every((x) => x.lost.length === 0) ? v : null;
    }, 60_000, 500).catch(() => null);
    const final = found ?? [0, 1].map(() => null);
    for (const p of [0, 1]) {
      const v = final[p] ?? verdict((await kcatReadAll(target.listeners.kafka!, targetTopic)).filter((r) => r.partition === p), { site: SITE, topic: TOPIC, partition: p }, expected[p]);
      t.same(
        { lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin },
        { lost: 0, duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 },
        `partition ${p}: the target holds all ${RECORDS} acknowledged records (${v.found} found), none twice, in order`,
      );
    }

    // One forwarder per partition at a time: before the kill only its leader started forwarding
    // it; after, only the new leader, once its handover delay had passed after the kill.
    const spans = forwardingSpans(procs, 0);
    const beforeKill = spans.filter((s) => s.startMs < killedAtMs);
    const afterKill = spans.filter((s) => s.startMs >= killedAtMs);
    t.same([...new Set(beforeKill.map((s) => s.node))], [victim], `partition 0 forwarded only by node ${victim} before the kill`);
    t.same(afterKill.map((s) => s.node), [heir], `after the kill only node ${heir} started forwarding partition 0`);
    t.ok(afterKill.length === 1 && afterKill[0].startMs - killedAtMs >= HANDOVER_MS, `node ${heir} started ${afterKill[0] ? afterKill[0].startMs - killedAtMs : '?'} ms after the kill (fence + handover ≥ ${HANDOVER_MS} ms)`);
    const p1 = forwardingSpans(procs, 1);
    t.same([...new Set(p1.filter((s) => s.startMs < killedAtMs).map((s) => s.node))], [before.get(1)], `partition 1 forwarded only by its leader (node ${before.get(1)}) before the kill`);
    const p1After = [...new Set(p1.filter((s) => s.startMs >= killedAtMs).map((s) => s.node))];
    if (before.get(1) === victim) t.same(p1After, [after!.get(1)], `and after it only by its new leader (node ${after!.get(1)})`);
    else {
      // Its leader stayed. It starts again only if it stopped first: the victim was the
      // controller too, and until a new one is elected the survivors' leases lapse, or their view
      // of the partition's leader is empty for a moment ("no leader elected"); the gate's check or
      // the link's own look right before a write stops the run (logged either way), and it starts
      // again after the handover delay.
      const p1Leader = procs.get(before.get(1)!)!;
      const stops = p1Leader.logs.filter((l) => l.source === `${TOPIC}-1` && Date.parse(String(l.time)) >= killedAtMs && typeof l.msg === 'string' && /: stopping \(/.test(l.msg));
      t.same(p1After, stops.length > 0 ? [before.get(1)] : [], `and after it only by its leader (node ${before.get(1)}), again only after it stopped (${stops.map((l) => String(l.msg).replace(/^.*stopping /, '')).join('; ') || 'no stop'} after the kill)`);
    }
    // The survivors' own state table writes worked (node-local __uplink_state).
    const stateWarnings = [...procs.values()].flatMap((proc) => proc.logs.filter((l) => typeof l.msg === 'string' && /uplink state not (saved|trusted)/.test(l.msg)));
    t.same(stateWarnings.map((l) => l.msg), [], 'no node failed to save its uplink state');
    const stateRetries = [...procs.values()].flatMap((proc) => proc.logs.filter((l) => l.msg === 'uplink partition retrying' && /__uplink_state|NOT_LEADER/.test(String(l.err))));
    t.same(stateRetries.map((l) => l.err), [], 'no link retried over its state table (each node leads its own __uplink_state)');
    const heirResume = procs.get(heir)!.logs.find((l) => l.source === `${TOPIC}-0` && typeof l.msg === 'string' && l.msg.includes('exactly-once by read-back'));
    t.ok(heirResume, `node ${heir} resumed partition 0 by read-back: ${String(heirResume?.msg ?? 'no resume line')}`);
  });
}

if (uplinkToolsPresent(t, ['kcat'])) {
  t.test('uplink in a 3-node cluster: the leader frozen (SIGSTOP) past its session, replaced, then resumed: it stops without writing again; every acknowledged record once, in order', { timeout: 180_000 }, async (t) => {
    // uplink.inFlightMax = 2 partitions × 5 batches: nothing waits queued on the connection to the
    // target, where it would be written on resuming before the lease is looked at (docs/uplink.md).
    const { target, cluster, expected } = await startEdgeCluster(t, ['uplink.inFlightMax=10']);
    const before = await leaders(cluster, 1);
    const victim = before.get(0)!;
    const victimProc = cluster.node(victim).proc!;
    const procs = new Map(cluster.nodes.map((n) => [n.id, n.proc!] as const));
    await eventually(async () => sum(await metrics(victimProc), 'tributary_uplink_records_sent_total', `partition="0"`) >= 200 || null, 30_000, 50);
    cluster.pause(victim);
    const frozenAtMs = Date.now();
    const rest = cluster.nodes.filter((n) => n.id !== victim).map((n) => n.id);
    const after = await eventually(async () => {
      const l = await leaders(cluster, rest[0]);
      return rest.includes(l.get(0)!) ? l : null;
    }, 30_000, 100);
    const heir = after!.get(0)!;
    // The heir forwards (after its handover) while the old leader is still frozen.
    const heirProc = cluster.node(heir).proc!;
    await eventually(async () => sum(await metrics(heirProc), 'tributary_uplink_records_sent_total', `partition="0"`) > 0 || null, 30_000, 100);
    t.pass(`node ${victim} frozen; node ${heir} leads partition 0 and forwards it`);
    cluster.resume(victim);
    const resumedAtMs = Date.now();
    // The old leader notices at once (the pause was longer than its lease) and stops.
    const stopLine = await eventually(() => victimProc.logs.find((l) => l.source === `${TOPIC}-0` && typeof l.msg === 'string' && l.msg.includes('stopping')) ?? null, 20_000, 100);
    t.ok(stopLine, `node ${victim} on resuming: ${String(stopLine?.msg)}`);
    for (const p of [0, 1]) {
      const r = await sh('kcat', ['-P', '-b', heirProc.listeners.kafka!, '-t', TOPIC, '-p', String(p), '-X', 'acks=all'], expected[p].slice(RECORDS - 200).join('\n') + '\n');
      t.equal(r.code, 0, `200 more records acknowledged on partition ${p} after the old leader resumed: ${r.stderr.slice(0, 200)}`);
    }
    const targetTopic = `${SITE}.${TOPIC}`;
    const read = async () => {
      const all = await kcatReadAll(target.listeners.kafka!, targetTopic);
      return [0, 1].map((p) => verdict(all.filter((r) => r.partition === p), { site: SITE, topic: TOPIC, partition: p }, expected[p]));
    };
    const found = (await eventually(async () => ((await read()).every((x) => x.lost.length === 0) ? true : null), 60_000, 500).catch(() => null)) ? await read() : await read();
    for (const p of [0, 1]) {
      const v = found[p]!;
      t.same(
        { lost: v.lost.length, duplicated: v.duplicated.length, reordered: v.reordered, wrongValue: v.wrongValue, withoutOrigin: v.withoutOrigin },
        { lost: 0, duplicated: 0, reordered: 0, wrongValue: 0, withoutOrigin: 0 },
        `partition ${p}: the target holds all ${RECORDS} acknowledged records (${v.found} found), none twice, in order`,
      );
    }
    const spans = forwardingSpans(procs, 0);
    t.same(spans.filter((s) => s.startMs >= frozenAtMs).map((s) => s.node), [heir], `after the freeze only node ${heir} started forwarding partition 0 (node ${victim} did not start again after resuming at +${resumedAtMs - frozenAtMs} ms)`);
  });
}
