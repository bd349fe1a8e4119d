// Runs a differential-test script (test/helpers/mqtt-script.ts) against one MQTT server and
// records what every client received: CONNACK, SUBACK codes, acknowledgements of its own
// publishes, every PUBLISH delivered to it, and how each connection ended.
//
// Clients speak MQTT at the packet level (mqtt-packet's codec, no client library), so the script
// decides what mqtt.js would hide: a client that never acknowledges QoS 1/2 deliveries, packet
// ids kept across reconnects, a socket destroyed without DISCONNECT.
//
// Determinism: consecutive publishes are written without waiting (pipelined), and before any
// other step the runner settles: every connected client's own QoS 1/2 flows complete, then each
// one publishes a QoS 0 sentinel to its private topic `zz/<client id>` and waits for it to come
// back (the server has written out what it had for that client), then no packet arrives on any
// connection for `quietMs`. Timeouts are short and bounded: a server that never answers costs at
// most `answerTimeoutMs` per step, and the missing answer is itself recorded.
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as mqttPacket from 'mqtt-packet';
import { clientName, payloadOf, willPayloadOf, type Script, type Step } from './mqtt-script.js';

/** Topic prefix of the harness's sentinels; deliveries on it are harness traffic, never compared. */
export const SENTINEL_PREFIX = 'zz/';

export interface Receipt {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
}

export interface ConnectionLog {
  /** `c2@#7`: client c2's connection opened by step 7. */
  key: string;
  connack: string;
  /** step id → granted QoS / reason codes, or 'no SUBACK' */
  subacks: Record<number, string>;
  unsubacks: Record<number, string>;
  /** step id of an own QoS 1/2 publish → 'acked' | 'refused 0x..' | 'no ack' */
  publishAcks: Record<number, string>;
  received: Receipt[];
  end: 'DISCONNECT' | 'client closed' | 'server closed' | 'open at end';
}

export interface Observation {
  connections: ConnectionLog[];
}

/** How the runner makes one step on one side, after the intended-differences table had its say. */
export type StepAction = 'run' | 'refuse-close' | 'refuse-ack';

export interface RunOptions {
  port: number;
  /** Prefix of client ids, unique per script run so sessions of earlier scripts never interfere. */
  clientIdPrefix: string;
  /** Lets the intended-differences table change a step on this side (see mqtt-script-compare.ts). */
  actionFor?: (step: Step, script: Script) => StepAction;
  answerTimeoutMs?: number;
  quietMs?: number;
}

type Packet = mqttPacket.Packet;

/** Quiet window before a connection ends: retained-on-SUBSCRIBE deliveries still on the way (see settle). */
const ENDING_QUIET_MS = 60;

/** One MQTT connection driven packet by packet. */
class PacketClient {
  readonly log: ConnectionLog;
  private socket!: Socket;
  private readonly parser: mqttPacket.Parser;
  private readonly waiters = new Set<{ test: (p: Packet) => boolean; resolve: (p: Packet | undefined) => void }>();
  /** own QoS 1/2 publishes not yet completed: packet id → step id (-1: a sentinel) */
  readonly ownInflight = new Map<number, number>();
  /** when each of them was sent: a flow the server never completes stops holding up the script after the answer timeout */
  readonly ownSentAt = new Map<number, number>();
  closedByUs = false;
  closed = false;
  private closedWaiters: Array<() => void> = [];
  lastPacketAt = Date.now();
  sentinelSeen = 0;
  /** The will payload this connection left with the server, until the runner saw it published. */
  willPending?: string;
  /** Every payload received (the observer uses it to see wills). */
  readonly payloads = new Set<string>();

  constructor(
    readonly clientId: string,
    readonly clientNumber: number,
    readonly protocolVersion: 4 | 5,
    readonly ack: boolean,
    key: string,
  ) {
    this.log = { key, connack: 'none', subacks: {}, unsubacks: {}, publishAcks: {}, received: [], end: 'open at end' };
    this.parser = mqttPacket.parser({ protocolVersion });
    this.parser.on('packet', (p: Packet) => {
      // MQTT_DIFF_TRACE=1: every packet each connection receives, on stderr (chasing a seed)
      if (process.env.MQTT_DIFF_TRACE) process.stderr.write(`trace ${this.socket?.remotePort} ${key} ${clientId} <- ${JSON.stringify({ ...p, payload: (p as { payload?: Buffer }).payload?.toString() })}\n`);
      this.onPacket(p);
    });
    this.parser.on('error', () => this.destroy(false));
  }

  open(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket = netConnect({ host: '127.0.0.1', port }, () => resolve());
      this.socket.setNoDelay(true);
      this.socket.on('data', (d) => this.parser.parse(d));
      this.socket.on('error', (err) => {
        if (!this.closed) reject(err);
      });
      this.socket.on('close', () => {
        if (!this.closed) {
          this.closed = true;
          if (!this.closedByUs && this.log.end === 'open at end') this.log.end = 'server closed';
        }
        for (const w of this.closedWaiters) w();
        for (const w of this.waiters) w.resolve(undefined);
        this.waiters.clear();
      });
    });
  }

  send(packet: Packet): void {
    if (this.closed) return;
    if (process.env.MQTT_DIFF_TRACE) process.stderr.write(`trace ${this.socket?.remotePort} ${this.log.key} ${this.clientId} -> ${JSON.stringify({ ...packet, payload: (packet as { payload?: Buffer }).payload?.toString() })}\n`);
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** Resolves with the first packet passing `test`, or undefined on timeout or close. */
  waitFor(test: (p: Packet) => boolean, timeoutMs: number): Promise<Packet | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = {
        test,
        resolve: (p: Packet | undefined) => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(p);
        },
      };
      const timer = setTimeout(() => w.resolve(undefined), timeoutMs);
      this.waiters.add(w);
    });
  }

  whenClosed(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.closedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(byUs: boolean): void {
    this.closedByUs = byUs;
    this.socket.destroy();
  }

  private onPacket(p: Packet): void {
    this.lastPacketAt = Date.now();
    switch (p.cmd) {
      case 'publish': {
        const payload = Buffer.isBuffer(p.payload) ? p.payload.toString() : String(p.payload);
        if (this.payloads.size < 10_000) this.payloads.add(payload);
        if (p.topic.startsWith(SENTINEL_PREFIX)) {
          if (p.topic === SENTINEL_PREFIX + this.clientId) this.sentinelSeen++;
        } else {
          this.log.received.push({ topic: p.topic, payload, qos: p.qos, retain: p.retain, dup: p.dup });
        }
        // sentinels are harness traffic: always acknowledged, also by a client that never acks the script's messages
        const ack = this.ack || p.topic.startsWith(SENTINEL_PREFIX);
        if (ack && p.qos === 1) this.send({ cmd: 'puback', messageId: p.messageId });
        if (ack && p.qos === 2) this.send({ cmd: 'pubrec', messageId: p.messageId });
        break;
      }
      case 'pubrel':
        this.send({ cmd: 'pubcomp', messageId: p.messageId });
        break;
      case 'pubrec': {
        // MQTT 5: a PUBREC reason code ≥ 0x80 ends the flow (§4.3.3)
        const rc = (p as { reasonCode?: number }).reasonCode ?? 0;
        if (rc >= 0x80) this.completeOwn(p.messageId!, rc);
        else this.send({ cmd: 'pubrel', messageId: p.messageId });
        break;
      }
      case 'puback':
      case 'pubcomp':
        this.completeOwn(p.messageId!, (p as { reasonCode?: number }).reasonCode ?? 0);
        break;
      default:
        break;
    }
    for (const w of [...this.waiters]) if (w.test(p)) w.resolve(p);
  }

  private completeOwn(messageId: number, reasonCode: number): void {
    const stepId = this.ownInflight.get(messageId);
    if (stepId === undefined) return;
    this.ownInflight.delete(messageId);
    this.ownSentAt.delete(messageId);
    if (stepId < 0) return; // a sentinel
    this.log.publishAcks[stepId] = reasonCode >= 0x80 ? `refused 0x${reasonCode.toString(16)}` : 'acked';
  }
}

const hex = (codes: number[]) => codes.map((c) => `0x${c.toString(16).padStart(2, '0')}`).join(',');

/** Runs one script against the server on `options.port` and returns what every client saw. */
export async function runScript(script: Script, options: RunOptions): Promise<Observation> {
  const answerMs = options.answerTimeoutMs ?? 1000;
  const quietMs = options.quietMs ?? 5;
  const pv = script.protocolVersion;
  const logs: ConnectionLog[] = [];
  const live = new Map<number, PacketClient>();
  // packet ids are per client across its connections: an id still in flight in a resumed session is never reused
  const nextId = new Map<number, number>();
  const takeId = (client: number) => {
    const n = ((nextId.get(client) ?? 0) % 65535) + 1;
    nextId.set(client, n);
    return n;
  };
  let sentinelCounter = 0;

  const connected = () => [...live.values()].filter((c) => !c.closed);

  // An observer subscribed to everything, outside the script: a will is published asynchronously
  // after a connection dies, and the runner waits until the observer has seen it.
  const observer = new PacketClient(`${options.clientIdPrefix}obs`, -1, pv, true, 'observer');
  await observer.open(options.port);
  observer.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: pv, clientId: observer.clientId, clean: true, keepalive: 60, ...(pv === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}) });
  if (await observer.waitFor((p) => p.cmd === 'connack', answerMs)) {
    observer.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] });
    await observer.waitFor((p) => p.cmd === 'suback', answerMs);
  }
  const dead: PacketClient[] = [];

  /** publishes since the last settle */
  const burst: Array<Extract<Step, { op: 'publish' }>> = [];

  /** Settles every connection, or only `only` after a step that concerns no other client (connect, subscribe, unsubscribe). */
  async function settle(only?: PacketClient, ending = false): Promise<void> {
    const scope = () => (only ? connected().filter((c) => c === only) : connected());
    if (!only) burst.length = 0;
    // 0. wills of connections that died are published (or the server never publishes them)
    // A connection this runner destroyed (`dead`) counts as gone at once: its socket's 'close'
    // event may not have fired yet, and a will that Tributary publishes after an fsync would
    // otherwise race the script's next step (seed 509094: the client's own reconnect got it).
    for (const c of [...live.values(), ...dead]) {
      if (!c.willPending || (!c.closed && !dead.includes(c))) continue;
      const will = c.willPending;
      c.willPending = undefined;
      const until = Date.now() + answerMs;
      while (!observer.payloads.has(will) && !observer.closed && Date.now() < until) await pause(2);
    }
    dead.length = 0;
    // 1. own QoS 1/2 flows complete (or the server never answers: recorded as 'no ack')
    const waiting = () => scope().some((c) => [...c.ownSentAt.values()].some((at) => Date.now() - at < answerMs));
    while (waiting()) await pause(2);
    // 2. a QoS 1 sentinel per client through the server and back, on the path of QoS 1/2 deliveries:
    //    whatever the server had queued for that client before it is written out
    await Promise.all(
      scope().map(async (c) => {
        const seen = c.sentinelSeen;
        const messageId = takeId(c.clientNumber);
        c.ownInflight.set(messageId, -1);
        c.ownSentAt.set(messageId, Date.now());
        c.send({ cmd: 'publish', topic: SENTINEL_PREFIX + c.clientId, payload: Buffer.from(`s${sentinelCounter++}`), qos: 1, retain: false, dup: false, messageId });
        const until = Date.now() + answerMs;
        while (!c.closed && c.sentinelSeen === seen && Date.now() < until) await pause(2);
      }),
    );
    // 3. quiet: nothing arrived on any connection for quietMs (asynchronous delivery paths catch up).
    //    Before a connection ends (and at the end of the script) the window is longer: retained
    //    messages sent on SUBSCRIBE follow the SUBACK one write at a time and may still be on the
    //    way after the sentinel (a loaded machine, seed 509078: the last one arrived after it);
    //    once the connection is gone they can no longer be compared.
    const quiet = ending ? Math.max(quietMs, ENDING_QUIET_MS) : quietMs;
    const quietDeadline = Date.now() + answerMs;
    for (;;) {
      const last = Math.max(0, ...[...live.values()].map((c) => c.lastPacketAt));
      const idle = Date.now() - last;
      if (idle >= quiet || Date.now() > quietDeadline) break;
      await pause(quiet - idle + 1);
    }
  }

  const steps = script.steps;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    let client = live.get(step.client);
    if (client?.closed) {
      live.delete(step.client);
      client = undefined;
    }
    const action = options.actionFor?.(step, script) ?? 'run';
    if (step.op === 'connect') {
      if (client) continue;
      const clientId = `${options.clientIdPrefix}${clientName(step.client)}`;
      const c = new PacketClient(clientId, step.client, pv, step.ack, `${clientName(step.client)}@#${step.id}`);
      logs.push(c.log);
      try {
        await c.open(options.port);
      } catch (err) {
        c.log.connack = `connect failed: ${(err as Error).message}`;
        c.log.end = 'server closed';
        continue;
      }
      live.set(step.client, c);
      if (step.will) c.willPending = willPayloadOf(script.seed, step);
      const will = step.will
        ? { topic: step.will.topic, payload: Buffer.from(willPayloadOf(script.seed, step)), qos: step.will.qos, retain: step.will.retain }
        : undefined;
      c.send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: pv,
        clientId,
        clean: step.clean,
        keepalive: 60,
        ...(will ? { will } : {}),
        ...(pv === 5 ? { properties: { sessionExpiryInterval: step.clean ? 0 : 3600 } } : {}),
      });
      const connack = (await c.waitFor((p) => p.cmd === 'connack', answerMs)) as mqttPacket.IConnackPacket | undefined;
      if (!connack) {
        c.log.connack = c.closed ? 'closed without CONNACK' : 'no CONNACK';
      } else {
        const rc = pv === 5 ? connack.reasonCode : connack.returnCode;
        c.log.connack = `rc ${rc} sessionPresent ${connack.sessionPresent ? 1 : 0}`;
        const messageId = takeId(step.client);
        c.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: SENTINEL_PREFIX + clientId, qos: 1 }] });
        await c.waitFor((p) => p.cmd === 'suback' && p.messageId === messageId, answerMs);
      }
    } else if (!client) {
      continue; // a step of a client that is not connected (after a server close, or in a shrunk script)
    } else if (step.op === 'subscribe') {
      const messageId = takeId(step.client);
      client.send({ cmd: 'subscribe', messageId, subscriptions: step.subs.map((s) => ({ topic: s.filter, qos: s.qos })) });
      const ack = (await client.waitFor((p) => p.cmd === 'suback' && p.messageId === messageId, answerMs)) as mqttPacket.ISubackPacket | undefined;
      client.log.subacks[step.id] = ack ? hex(ack.granted as number[]) : 'no SUBACK';
    } else if (step.op === 'unsubscribe') {
      const messageId = takeId(step.client);
      client.send({ cmd: 'unsubscribe', messageId, unsubscriptions: step.filters });
      const ack = (await client.waitFor((p) => p.cmd === 'unsuback' && p.messageId === messageId, answerMs)) as mqttPacket.IUnsubackPacket | undefined;
      // MQTT 5 UNSUBACK carries a reason code per filter; 3.1.1 none
      client.log.unsubacks[step.id] = !ack ? 'no UNSUBACK' : pv === 5 ? hex(((ack as { reasonCode?: number[] }).reasonCode ?? []) as number[]) : 'ok';
    } else if (step.op === 'publish') {
      // a refused publish may close the connection: what was pipelined around it would race with the close
      const refusable = step.topic.startsWith('$');
      // pipelined retained publishes to one topic by two clients, or by one client at two QoS levels, have no
      // defined order (MQTT 3.1.1 §4.6 orders per client, topic and QoS): which one stays retained is a race. Settle between them.
      const racesRetained = step.retain && burst.some((b) => b.retain && b.topic === step.topic && (b.client !== step.client || b.qos !== step.qos));
      if ((refusable || racesRetained) && burst.length > 0) await settle();
      burst.push(step);
      if (action === 'refuse-close') {
        // what the server does when it refuses a publish in MQTT 3.1.1: the connection ends, unanswered
        if (step.qos > 0) client.log.publishAcks[step.id] = 'no ack';
        client.destroy(false);
        client.log.end = 'server closed';
        live.delete(step.client);
        dead.push(client);
      } else if (action === 'refuse-ack') {
        client.log.publishAcks[step.id] = 'refused 0x80+';
      } else {
        const messageId = step.qos > 0 ? takeId(step.client) : undefined;
        if (messageId !== undefined) {
          client.ownInflight.set(messageId, step.id);
          client.ownSentAt.set(messageId, Date.now());
          client.log.publishAcks[step.id] = 'no ack';
        }
        client.send({
          cmd: 'publish',
          topic: step.topic,
          payload: Buffer.from(payloadOf(script.seed, step)),
          qos: step.qos,
          retain: step.retain,
          dup: false,
          ...(messageId !== undefined ? { messageId } : {}),
        });
      }
      // pipelined: the next publish does not wait (a refusal's close shows in the settle: the sentinel never returns)
      const following = steps[i + 1];
      if (!refusable && following?.op === 'publish' && !following.topic.startsWith('$')) continue;
    } else if (step.op === 'disconnect') {
      client.closedByUs = true;
      client.send({ cmd: 'disconnect', ...(pv === 5 ? { reasonCode: 0 } : {}) });
      client.log.end = 'DISCONNECT';
      client.willPending = undefined; // MQTT-3.1.2-10: DISCONNECT discards the will
      await client.whenClosed(answerMs); // the server closes after DISCONNECT (MQTT-3.14.4-1)
      if (!client.closed) client.destroy(true);
      live.delete(step.client);
    } else if (step.op === 'close') {
      client.destroy(true);
      client.log.end = 'client closed';
      live.delete(step.client);
      dead.push(client);
    }
    // a burst of publishes and a will's deliveries (close) concern everyone; a connect, subscribe or
    // unsubscribe only that client; after a DISCONNECT the server already closed the connection
    // The settle before a step that ends a connection waits longer for quiet (see settle).
    const next = steps[i + 1];
    const ending = next !== undefined && (next.op === 'disconnect' || next.op === 'close');
    if (step.op === 'close' || step.op === 'publish') await settle(undefined, ending);
    else if (step.op !== 'disconnect') await settle(ending ? undefined : live.get(step.client), ending);
  }
  await settle(undefined, true);
  // DISCONNECT, not a close: a will published now would outlive the script (a retained one into the next)
  for (const c of [...live.values(), observer]) {
    if (!c.closed) {
      c.closedByUs = true;
      c.send({ cmd: 'disconnect', ...(pv === 5 ? { reasonCode: 0 } : {}) });
    }
  }
  await Promise.all([...live.values(), observer].map((c) => c.whenClosed(answerMs)));
  for (const c of [...live.values(), observer]) if (!c.closed) c.destroy(true);
  return { connections: logs };
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Returns a server to the state of a fresh one, as far as MQTT can see, after a script: retained
 * messages on the script topics cleared, and every session the script's client ids left behind
 * discarded (a clean-session CONNECT then DISCONNECT).
 */
export async function resetServer(port: number, protocolVersion: 4 | 5, clientIds: string[], retainedTopics: readonly string[]): Promise<void> {
  const ids = [...clientIds, 'zz-reset'];
  for (const clientId of ids) {
    const c = new PacketClient(clientId, -1, protocolVersion, true, 'reset');
    await c.open(port);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId, clean: true, keepalive: 60, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}) });
    await c.waitFor((p) => p.cmd === 'connack', 2000);
    if (clientId === 'zz-reset') {
      let messageId = 1;
      // `$q/x` too: both servers accept and retain publishes to `$` topics (MQTT-4.7.2-1 only keeps
      // them from wildcard subscribers), and one left behind would show in the next script
      for (const topic of retainedTopics) {
        c.ownInflight.set(messageId, -1);
        c.send({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 1, retain: true, dup: false, messageId: messageId++ });
      }
      const deadline = Date.now() + 2000;
      while (c.ownInflight.size > 0 && Date.now() < deadline) await pause(2);
    }
    c.closedByUs = true;
    c.send({ cmd: 'disconnect', ...(protocolVersion === 5 ? { reasonCode: 0 } : {}) });
    await c.whenClosed(1000);
    if (!c.closed) c.destroy(true);
  }
}

/** A free TCP port on loopback (for servers that cannot report the port they bound, like Mosquitto). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** How long Mosquitto must stay up after its port first answers (see startMosquitto). */
const MOSQUITTO_BIND_GRACE_MS = 100;

export interface MosquittoProcess {
  port: number;
  child: ChildProcess;
  /** The last few kB Mosquitto wrote to stderr (errors and warnings). */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's `mosquitto` 2.0 on a free loopback port with a temp config: anonymous access,
 * no persistence (no script restarts the server), no `$SYS` hierarchy (`sys_interval 0`, see the
 * intended-differences table) and no in-flight window (`max_inflight_messages 0`: a client that
 * never acknowledges still receives every delivery, as it does from aedes).
 */
export async function startMosquitto(dir: string): Promise<MosquittoProcess> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = join(dir, `mosquitto-${port}.conf`);
    await writeFile(
      conf,
      [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'sys_interval 0', 'max_inflight_messages 0', 'max_queued_messages 10000', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'),
    );
    const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let up = false;
    const deadline = Date.now() + 5000;
    while (!up && child.exitCode === null && Date.now() < deadline) {
      up = await new Promise<boolean>((resolve) => {
        const s = netConnect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (!up) await pause(10);
    }
    // The probe may have reached another process's listener: the port was free when freePort
    // closed it, and a server starting beside this one (another lane's Tributary binds port 0)
    // can take it before Mosquitto binds; Mosquitto then exits at once ("Address already in
    // use") and every later connection of the lane would go to the squatter, and be refused when
    // it stops. So the port counts as Mosquitto's only while Mosquitto is still running a moment
    // after the probe (a failed bind ends it within milliseconds of its start).
    if (up) await pause(MOSQUITTO_BIND_GRACE_MS);
    if (up && child.exitCode === null && !/address already in use/i.test(stderr)) {
      return {
        port,
        child,
        stderr: () => stderr,
        async stop() {
          if (child.exitCode === null) child.kill('SIGKILL');
          await exited;
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    if (attempt >= 3) throw new Error(`mosquitto did not start on port ${port}: ${stderr}`);
  }
}
