// Shared by the WebSocket/HTTP test files: an in-process broker (real files in a temp dir)
// with the gateway on a random port, and a small `ws` client that records every frame and
// answers requests by id.
import WebSocket from 'ws';
import { Broker } from '../../../host/broker/broker.js';
import { GroupCoordinator } from '../../../host/broker/groups/index.js';
import { MetricsRegistry } from '../../../host/metrics/registry.js';
import type { WsGatewayOptions } from '../../../gateway/ws/index.js';
import { cbor } from '../../../gateway/ws/protocol.js';
import { eventually } from '../../helpers/index.js';
import { openTestStack } from '../../helpers/stack.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Gateway {
  broker: Broker;
  groups?: GroupCoordinator;
  metrics: MetricsRegistry;
  address: string;
  http: string;
  wsUrl: string;
  setHealthy(v: boolean): void;
  close(): Promise<void>;
  /** What the node would report for a listener in /healthz (a listener that stopped listening: up false). */
  setListener: (name: string, up: boolean) => void;
}

export async function openGateway(t: Teardown, options: Partial<WsGatewayOptions> = {}, { groups = false, dataDir }: { groups?: boolean; dataDir?: string } = {}): Promise<Gateway> {
  let healthy = true;
  const doors = new Map<string, boolean>();
  const s = await openTestStack(t, {
    dataDir,
    dirPrefix: 'tributary-ws-',
    groups: groups ? { initialRebalanceDelayMs: 0 } : undefined,
    ws: options,
    wsDeps: { health: () => healthy, listeners: () => [...doors].map(([name, up]) => ({ name, up })) },
  });
  const address = s.ws!.address;
  return {
    broker: s.broker,
    groups: s.groups,
    metrics: s.metrics,
    address,
    http: `http://${address}`,
    wsUrl: `ws://${address}/ws`,
    setHealthy: (v) => (healthy = v),
    setListener: (name, up) => void doors.set(name, up),
    close: s.close,
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;

export class Client {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;

  constructor(
    url: string,
    readonly encoding: 'json' | 'cbor' = 'json',
    options: { protocols?: string[]; headers?: Record<string, string> } = {},
  ) {
    this.ws = new WebSocket(url, options.protocols ?? [encoding === 'json' ? 'tributary.json.v1' : 'tributary.cbor.v1'], { headers: options.headers });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push(isBinary ? cbor.decode(data) : JSON.parse(data.toString()));
    });
    this.ws.on('error', () => undefined);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(t: Teardown, url: string, encoding: 'json' | 'cbor' = 'json', options: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<Client> {
    const c = new Client(url, encoding, options);
    t.teardown(() => c.ws.terminate());
    await c.opened;
    return c;
  }

  sendRaw(frame: Frame): void {
    this.ws.send(this.encoding === 'json' ? JSON.stringify(frame) : cbor.encode(frame));
  }

  /** Sends a request with a fresh id and waits for the answer (or error) naming it. */
  async request(frame: Frame, timeoutMs = 10_000): Promise<Frame> {
    const id = frame.id ?? `r${this.nextId++}`;
    this.sendRaw({ ...frame, id });
    return this.waitFor((f) => f.id === id && f.type !== 'records', timeoutMs);
  }

  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    return eventually(() => this.frames.find(pred), timeoutMs, 5) as Promise<Frame>;
  }

  /** Every record received so far for a topic, in arrival order. */
  records(topic?: string): Frame[] {
    return this.frames.filter((f) => f.type === 'records' && (!topic || f.topic === topic)).flatMap((f) => f.records.map((r: Frame) => ({ ...r, partition: f.partition })));
  }

  async waitForRecords(n: number, topic?: string, timeoutMs = 10_000): Promise<Frame[]> {
    await eventually(() => this.records(topic).length >= n, timeoutMs, 5);
    return this.records(topic);
  }
}
