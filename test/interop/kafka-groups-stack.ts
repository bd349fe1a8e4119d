// In-process Tributary for the group interop tests: a real Broker on a data dir, the group
// coordinator and the Kafka listener on a real socket. `restart()` closes everything (as a
// shutdown would) and opens it again over the same data dir and, when free, the same port.
import type { Broker } from '../../host/broker/broker.js';
import type { GroupCoordinator, GroupOptions } from '../../host/broker/groups/index.js';
import { openTestStack, type TestStack } from '../helpers/stack.js';

export const interopGroupOptions: Partial<GroupOptions> = {
  minSessionTimeoutMs: 1000, // tests use 3–6 s sessions to stay fast
  initialRebalanceDelayMs: 300,
};

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface Stack {
  broker: Broker;
  groups: GroupCoordinator;
  address: string;
  port: number;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startStack(t: Tap, dataDir: string, groupOptions: Partial<GroupOptions> = interopGroupOptions): Promise<Stack> {
  let current: TestStack | undefined;
  const open = async (port: number) => {
    current = await openTestStack({ teardown: () => undefined }, { dataDir, groups: groupOptions, kafka: { port, dataDir } });
    stack.broker = current.broker;
    stack.groups = current.groups!;
    stack.address = current.kafka!.address;
    stack.port = current.portOf('kafka');
  };
  const stack: Stack = {
    broker: undefined as unknown as Broker,
    groups: undefined as unknown as GroupCoordinator,
    address: '',
    port: 0,
    close: () => current?.close() ?? Promise.resolve(),
    async restart() {
      const port = stack.port;
      await stack.close();
      await open(port).catch(() => open(0));
    },
  };
  await open(0);
  t.teardown(() => stack.close());
  return stack;
}
