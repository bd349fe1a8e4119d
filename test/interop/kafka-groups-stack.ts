// In-process Tributary for the group interop tests: a real Broker on a data dir, the group
// coordinator and the Kafka listener on a real socket. `restart()` closes everything (as a
// shutdown would) and opens it again over the same data dir and, when free, the same port.
import { Broker } from '../../host/broker/broker.js';
import { GroupCoordinator, type GroupOptions } from '../../host/broker/groups/index.js';
import { startKafkaServer } from '../../host/kafka/server.js';
import { silentLogger } from '../../host/logging.js';
import { MetricsRegistry } from '../../host/metrics/registry.js';

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
  let listener: { close(): Promise<void> } | null = null;
  const open = async (port: number) => {
    const metrics = new MetricsRegistry();
    const deps = { logger: silentLogger, metrics };
    const broker = await Broker.open({ dataDir }, deps);
    const groups = await GroupCoordinator.open(broker, groupOptions, deps);
    const l = await startKafkaServer({ broker, groups, ...deps }, { host: '127.0.0.1', port, dataDir });
    listener = l;
    stack.broker = broker;
    stack.groups = groups;
    stack.address = l.address;
    stack.port = Number(l.address.slice(l.address.lastIndexOf(':') + 1));
  };
  let closed = true;
  const stack: Stack = {
    broker: undefined as unknown as Broker,
    groups: undefined as unknown as GroupCoordinator,
    address: '',
    port: 0,
    async close() {
      if (closed) return;
      closed = true;
      await listener?.close();
      await stack.groups.close();
      await stack.broker.close();
    },
    async restart() {
      const port = stack.port;
      await stack.close();
      await open(port).catch(() => open(0));
      closed = false;
    },
  };
  await open(0);
  closed = false;
  t.teardown(() => stack.close());
  return stack;
}
