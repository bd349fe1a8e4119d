// Shared set-up of the group unit tests: a real Broker on a temp dir, a coordinator over it
// with a manual clock, and small helpers to drive members through the JS API.
import { Broker } from '../../../host/broker/broker.js';
import { GroupCoordinator, type GroupOptions, type JoinGroupResult, JoinGroupError } from '../../../host/broker/groups/index.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import { tempDir } from '../../helpers/index.js';
import { openTestStack, type TestStack } from '../../helpers/stack.js';
import { ManualClock } from './manual-clock.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

export const testGroupOptions: Partial<GroupOptions> = {
  minSessionTimeoutMs: 100,
  initialRebalanceDelayMs: 50,
  offsetsTopicPartitions: 2,
};

export interface Fixture {
  dir: string;
  broker: Broker;
  groups: GroupCoordinator;
  clock: ManualClock;
  metrics: MetricsRegistry;
  /** Closes the coordinator and the broker, then opens both again over the same dir. */
  reopen(options?: Partial<GroupOptions>): Promise<void>;
}

export async function setup(t: Tap, options: Partial<GroupOptions> = {}, dir?: string): Promise<Fixture> {
  const dataDir = dir ?? (await tempDir(t, 'tributary-groups-'));
  const clock = new ManualClock();
  const metrics = new MetricsRegistry();
  // Each (re)open is one stack over the same dir; the last one open is closed at teardown.
  let current: TestStack | undefined;
  const open = async (groups: Partial<GroupOptions>) => {
    current = await openTestStack(t, { dataDir, metrics, clock, groups });
    fx.broker = current.broker;
    fx.groups = current.groups!;
  };
  const fx: Fixture = {
    dir: dataDir,
    clock,
    metrics,
    broker: undefined as unknown as Broker,
    groups: undefined as unknown as GroupCoordinator,
    async reopen(next?: Partial<GroupOptions>) {
      await current?.close();
      await open({ ...testGroupOptions, ...options, ...next });
    },
  };
  await open({ ...testGroupOptions, ...options });
  return fx;
}

export const bytes = (s: string) => new TextEncoder().encode(s);
export const text = (b: Uint8Array) => new TextDecoder().decode(b);

export interface JoinSpec {
  memberId?: string;
  instance?: string | null;
  protocols?: Array<[string, string]>;
  sessionTimeoutMs?: number;
  rebalanceTimeoutMs?: number;
  protocolType?: string;
}

/** Starts a JoinGroup (the promise settles when the rebalance completes). */
export function join(groups: GroupCoordinator, groupId: string, spec: JoinSpec = {}): Promise<JoinGroupResult> {
  return groups.joinGroup({
    groupId,
    memberId: spec.memberId ?? '',
    groupInstanceId: spec.instance ?? null,
    sessionTimeoutMs: spec.sessionTimeoutMs ?? 1000,
    rebalanceTimeoutMs: spec.rebalanceTimeoutMs ?? 2000,
    protocolType: spec.protocolType ?? 'consumer',
    protocols: (spec.protocols ?? [['range', 'sub-a']]).map(([name, meta]) => ({ name, metadata: bytes(meta) })),
    clientId: 'unit',
    clientHost: '/127.0.0.1',
  });
}

/**
 * Moves the clock in 50 ms steps until every promise settled (an initial rebalance extends its
 * delay while members keep arriving), at most `maxMs`; returns the values.
 */
export async function settle<T>(clock: ManualClock, promises: Array<Promise<T>>, maxMs = 5000): Promise<T[]> {
  let done = 0;
  for (const p of promises) void p.then(() => done++, () => done++);
  for (let waited = 0; done < promises.length && waited < maxMs; waited += 50) await clock.advance(50);
  return Promise.all(promises);
}

/** Resolves with the error code a promise rejects with (fails the test when it resolves). */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return (e as { code?: string }).code ?? `not a BrokerError: ${String(e)}`;
  }
  return 'resolved';
}

export { JoinGroupError, ManualClock };
