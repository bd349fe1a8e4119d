// A Mosquitto and a Tributary side by side for the differential test: runs one script on both
// at once, compares, and returns the servers to a fresh-looking state for the next script
// (starting the Tributary process costs about a second on a loaded machine, so a pair serves many
// scripts; a pair that saw a difference is replaced, and a minimal script is confirmed on a
// brand-new pair).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker, type BrokerProcess } from './index.js';
import { clientName, TOPICS, type Script } from './mqtt-script.js';
import { resetServer, runScript, startMosquitto, type MosquittoProcess, type Observation } from './mqtt-script-runner.js';
import { compare, mosquittoActions, type Difference } from './mqtt-script-compare.js';

export interface PairResult {
  diffs: Difference[];
  mosquitto: Observation;
  tributary: Observation;
}

export class ServerPair {
  private runs = 0;
  private constructor(
    private readonly dir: string,
    private readonly mosquitto: MosquittoProcess,
    private readonly tributary: BrokerProcess,
  ) {}

  static async start(): Promise<ServerPair> {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-mqtt-diff-'));
    const teardowns: Array<() => unknown> = [];
    const [mosquitto, tributary] = await Promise.all([
      startMosquitto(dir),
      startBroker({ teardown: (fn) => teardowns.push(fn) }, { dataDir: join(dir, 'tributary'), env: { TRIBUTARY_LOG_LEVEL: 'error' } }),
    ]);
    return new ServerPair(dir, mosquitto, tributary);
  }

  /** Runs `script` on both servers concurrently and compares what the clients received. */
  async run(script: Script): Promise<PairResult> {
    const prefix = `r${this.runs++}-`;
    try {
      const [mosquitto, tributary] = await Promise.all([
        runScript(script, { port: this.mosquitto.port, clientIdPrefix: prefix, actionFor: mosquittoActions }),
        runScript(script, { port: this.tributary.port('mqtt'), clientIdPrefix: prefix }),
      ]);
      const ids = Array.from({ length: script.clients }, (_, c) => prefix + clientName(c));
      await Promise.all([
        resetServer(this.mosquitto.port, script.protocolVersion, ids, TOPICS),
        resetServer(this.tributary.port('mqtt'), script.protocolVersion, ids, TOPICS),
      ]);
      return { diffs: compare(script, mosquitto, tributary), mosquitto, tributary };
    } catch (err) {
      // a server that cannot be reached: say which one, and whether its process is still running
      const state = (name: string, port: number, child: { exitCode: number | null; signalCode: NodeJS.Signals | null }) =>
        `${name} on port ${port}: ${child.exitCode === null && child.signalCode === null ? 'running' : `exited (${child.exitCode ?? child.signalCode})`}`;
      const tail = this.tributary.logs.slice(-5).map((l) => JSON.stringify(l)).join('\n');
      throw new Error(
        `seed ${script.seed}: ${(err as Error).message}; ${state('mosquitto', this.mosquitto.port, this.mosquitto.child)}, ${state('tributary', this.tributary.port('mqtt'), this.tributary.child)}${tail ? `; tributary's last log lines:\n${tail}` : ''}${this.mosquitto.stderr() ? `\nmosquitto's stderr: ${this.mosquitto.stderr()}` : ''}`,
      );
    }
  }

  async stop(): Promise<void> {
    await Promise.all([this.mosquitto.stop(), this.tributary.kill()]);
    await rm(this.dir, { recursive: true, force: true });
  }
}
