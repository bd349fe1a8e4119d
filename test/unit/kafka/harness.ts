// Shared by the Kafka test suites: a real broker (real files in a temp dir) with the Kafka
// listener on a random port. Uses the real process (dist/host/main.js) once main.ts starts the
// Kafka listener; until then the pieces are started in this process.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { mainJs, projectRoot, startBroker, tempDir, type BrokerProcess } from '../../helpers/index.js';
import type { KafkaServerOptions } from '../../../host/kafka/server.js';
import { openTestStack } from '../../helpers/stack.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface KafkaUnderTest {
  host: string;
  port: number;
  /** "127.0.0.1:port" for kafkajs/kcat. */
  bootstrap: string;
  dataDir: string;
  /** The broker process when running out of process. */
  proc?: BrokerProcess;
  /** Restart on the same data dir (in-process or real process). */
  restart(): Promise<KafkaUnderTest>;
  stop(): Promise<void>;
}

/** True when dist/host/main.js starts a Kafka listener (the lead's entry point is wired). */
export function mainHasKafka(): boolean {
  if (!existsSync(mainJs)) return false;
  return ['host/main.js', 'host/cli.js', 'host/node.js'].some((f) => {
    const p = join(projectRoot, 'dist', f);
    return existsSync(p) && readFileSync(p, 'utf8').includes('startKafkaServer');
  });
}

/** An in-process broker + Kafka listener on port 0. */
export async function startInProcess(t: Teardown, options: Partial<KafkaServerOptions> = {}, dataDir?: string, stops?: Array<() => Promise<void>>): Promise<KafkaUnderTest> {
  // Our own temp dir (not tempDir): it is removed after every broker on it (restarts too) closed.
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'tributary-kafka-')));
  if (!stops) {
    const all: Array<() => Promise<void>> = (stops = []);
    t.teardown(async () => {
      for (const s of all) await s();
      if (dataDir === undefined) await rm(dir, { recursive: true, force: true });
    });
  }
  // Closed by `stop` (restarts reuse the dir), not at teardown: the teardown above runs every stop first.
  const stack = await openTestStack({ teardown: () => undefined }, { dataDir: dir, groups: {}, kafka: options });
  const port = stack.portOf('kafka');
  const stop = stack.close;
  stops.push(stop);
  return {
    host: '127.0.0.1',
    port,
    bootstrap: `127.0.0.1:${port}`,
    dataDir: dir,
    stop,
    async restart() {
      await stop();
      return startInProcess(t, options, dir, stops);
    },
  };
}

/** A real broker process when main.ts runs the Kafka listener, else in-process. */
export async function startKafka(t: Teardown, options: Partial<KafkaServerOptions> = {}, dataDir?: string): Promise<KafkaUnderTest> {
  if (!mainHasKafka()) return startInProcess(t, options, dataDir);
  const dir = dataDir ?? (await tempDir(t, 'tributary-kafka-'));
  // Listener options reach the real process as config keys (`--set kafka.<key>=<value>`).
  const args = Object.entries(options).flatMap(([key, value]) => ['--set', `kafka.${key}=${value}`]);
  const proc = await startBroker(t, { dataDir: dir, args });
  const port = proc.port('kafka');
  return {
    host: '127.0.0.1',
    port,
    bootstrap: `127.0.0.1:${port}`,
    dataDir: dir,
    proc,
    async stop() {
      await proc.stop();
    },
    async restart() {
      await proc.stop();
      return startKafka(t, options, dir);
    },
  };
}
