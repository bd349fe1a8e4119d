// MQTT 5 shared subscriptions end to end: mqtt.js v5 (and raw MQTT 5 packets where a
// well-behaved client cannot send the case or hides what came back) against a real broker
// process. The CONNACK says shared subscriptions are available, refusals carry their MQTT 5
// reason codes, deliveries carry the subscription identifier and the record's properties, and
// the client's Receive Maximum bounds what is in flight to it.
import { connect as netConnect, type Socket } from 'node:net';
import t from 'tap';
import mqtt from 'mqtt';
import { Kafka, logLevel } from 'kafkajs';
import { eventually, sleep, startBroker, tempDir, type BrokerProcess } from '../helpers/index.js';
import { packet, str, u16 } from '../helpers/mqtt-packets.js';

const FAST_GROUPS = {
  TRIBUTARY_GROUPS_INITIAL_REBALANCE_DELAY_MS: '300',
  TRIBUTARY_GROUPS_MIN_SESSION_TIMEOUT_MS: '1000',
  TRIBUTARY_MQTT_SHARED_SESSION_TIMEOUT_MS: '3000',
  TRIBUTARY_MQTT_SHARED_COMMIT_INTERVAL_MS: '200',
  TRIBUTARY_LOG_LEVEL: 'warn',
};

interface Tap {
  teardown(fn: () => unknown): void;
}

const start = async (t: Tap, prefix: string, env: Record<string, string> = {}) => startBroker(t, { dataDir: await tempDir(t, prefix), env: { ...FAST_GROUPS, ...env } });
const urlOf = (proc: BrokerProcess) => `mqtt://127.0.0.1:${proc.port('mqtt')}`;
const v5 = (clientId: string, more: mqtt.IClientOptions = {}): mqtt.IClientOptions => ({ clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5_000, ...more });

async function createTopic(proc: BrokerProcess, topic: string, partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: 'shared5-test', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  } finally {
    await admin.disconnect();
  }
}

/** Waits until group `group` is Stable with `members` members (the assignment is in place). */
async function stable(proc: BrokerProcess, group: string, members: number): Promise<void> {
  const admin = new Kafka({ clientId: 'shared5-test', brokers: [`127.0.0.1:${proc.port('kafka')}`], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await eventually(async () => {
      const { groups } = await admin.describeGroups([group]);
      return groups[0].state === 'Stable' && groups[0].members.length === members;
    }, 30_000, 100);
  } finally {
    await admin.disconnect();
  }
}

async function connect5(t: Tap, proc: BrokerProcess, clientId: string, more: mqtt.IClientOptions = {}): Promise<{ client: mqtt.MqttClient; connack: mqtt.IConnackPacket }> {
  const client = mqtt.connect(urlOf(proc), v5(clientId, more));
  t.teardown(() => client.endAsync(true).catch(() => undefined));
  const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, connack };
}

/** A raw MQTT 5 client: CONNECT with chosen properties, SUBSCRIBE, and the packets that came back. */
class Raw5 {
  private buf = Buffer.alloc(0);
  readonly packets: Array<[number, Buffer]> = [];
  closed = false;
  private constructor(readonly sock: Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        let len = 0;
        let mul = 1;
        let i = 1;
        for (; i < 5 && i < this.buf.length; i++) {
          len += (this.buf[i] & 0x7f) * mul;
          mul *= 128;
          if ((this.buf[i] & 0x80) === 0) break;
        }
        if (i >= this.buf.length || this.buf.length < i + 1 + len) return;
        this.packets.push([this.buf[0], this.buf.subarray(i + 1, i + 1 + len)]);
        this.buf = this.buf.subarray(i + 1 + len);
      }
    });
    sock.on('close', () => (this.closed = true));
    sock.on('error', () => undefined);
  }

  static async open(t: Tap, proc: BrokerProcess, clientId: string, connectProps: Buffer = Buffer.from([0])): Promise<Raw5> {
    const sock = netConnect(proc.port('mqtt'), '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const raw = new Raw5(sock);
    t.teardown(() => sock.destroy());
    sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0x02]), u16(30), connectProps, str(clientId)])));
    await eventually(() => raw.packets.some(([b]) => b === 0x20), 5_000);
    return raw;
  }

  /** SUBSCRIBE (no properties); resolves with the SUBACK reason codes. */
  async subscribe(id: number, filters: Array<[string, number]>): Promise<number[]> {
    this.sock.write(packet(0x82, Buffer.concat([u16(id), Buffer.from([0]), ...filters.map(([f, o]) => Buffer.concat([str(f), Buffer.from([o])]))])));
    const ack = await eventually(() => this.packets.find(([b, body]) => b === 0x90 && body.readUInt16BE(0) === id), 10_000);
    const body = ack![1];
    return [...body.subarray(3 + body[2])];
  }

  /** PUBLISH packets received: [packet id, payload]. */
  publishes(): Array<[number, string]> {
    return this.packets
      .filter(([b]) => b >> 4 === 3)
      .map(([b, body]) => {
        const topicLen = body.readUInt16BE(0);
        let pos = 2 + topicLen;
        const id = (b >> 1) & 3 ? body.readUInt16BE(pos) : 0;
        if ((b >> 1) & 3) pos += 2;
        const propsLen = body[pos]; // short property sections in these tests (one byte length)
        return [id, body.subarray(pos + 1 + propsLen).toString()] as [number, string];
      });
  }

  puback(id: number): void {
    this.sock.write(packet(0x40, u16(id)));
  }
}

/** The SUBACK reason codes, in filter order (mqtt.js rejects a SUBACK holding a failure; its packet says which). */
async function subackCodes(client: mqtt.MqttClient, filters: string[], qos: 0 | 1 | 2): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(filters, { qos });
    return granted.map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

async function publishAll(proc: BrokerProcess, topic: (i: number) => string, n: number, tag: string, opts: mqtt.IClientPublishOptions = { qos: 1 }): Promise<string[]> {
  const pub = await mqtt.connectAsync(urlOf(proc), v5(`pub-${tag}`));
  const sent: string[] = [];
  for (let i = 0; i < n; i++) {
    sent.push(`${tag}-${i}`);
    await pub.publishAsync(topic(i), `${tag}-${i}`, opts);
  }
  await pub.endAsync();
  return sent;
}

// One broker process for the tests without options of their own (each uses its own stream
// topic and group); the ones with options get theirs.
let common: Promise<BrokerProcess> | undefined;
const commonBroker = () => (common ??= start(t, 'tributary-share5-common-'));

t.test('CONNACK: shared subscriptions available; a v5 member of $share/{group}/{filter} is granted and gets the records', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'avail', 2);
  const { client, connack } = await connect5(t, proc, 'avail-member');
  t.equal(connack.properties?.sharedSubscriptionAvailable, true, 'sharedSubscriptionAvailable = 1 (aedes alone says 0)');
  const granted = await client.subscribeAsync('$share/a/avail/#', { qos: 1 });
  t.same(granted.map((g) => g.qos), [1], 'SUBACK grants QoS 1');
  await stable(proc, 'a', 1);
  const got: string[] = [];
  client.on('message', (_topic, payload) => got.push(payload.toString()));
  const sent = await publishAll(proc, (i) => `avail/d${i}`, 6, 'avail');
  await eventually(() => got.length >= 6, 10_000);
  t.same([...got].sort(), [...sent].sort(), 'every record, once');
});

t.test('shared subscriptions off: CONNACK says 0 and a v5 $share/ SUBSCRIBE gets 0x9E; the connection stays', async (t) => {
  const proc = await start(t, 'tributary-share5-off-', { TRIBUTARY_MQTT_SHARED_SUBSCRIPTIONS: 'false' });
  const { client, connack } = await connect5(t, proc, 'off-member');
  t.equal(connack.properties?.sharedSubscriptionAvailable, false, 'sharedSubscriptionAvailable = 0');
  t.same(await subackCodes(client, ['$share/o/off/#', 'off/plain/#'], 1), [0x9e, 1], '0x9E Shared Subscriptions not supported; the plain filter granted');
  t.ok(client.connected, 'still connected');
});

t.test('SUBACK reason codes: 0x8F malformed share name, 0x83 second filter of one share name, 0x97 sharedMembersMax', async (t) => {
  const proc = await start(t, 'tributary-share5-codes-', { TRIBUTARY_MQTT_SHARED_MEMBERS_MAX: '1' });
  await createTopic(proc, 'codes', 1);
  const { client } = await connect5(t, proc, 'codes-a');
  t.same(await subackCodes(client, ['$share/c/codes/#', '$share//codes/#', '$share/c/codes/other/#'], 1), [1, 0x8f, 0x83], 'granted; 0x8F empty share name; 0x83 one filter per share name');
  // a wildcard in the share name: mqtt.js will not send it, aedes' own topic check would close the connection
  const raw = await Raw5.open(t, proc, 'codes-raw');
  t.same(await raw.subscribe(1, [['$share/c+d/codes/#', 1], ['$share/e#/codes/#', 0]]), [0x8f, 0x8f], '0x8F Topic Filter invalid for "+" and "#" in the share name');
  t.same(await raw.subscribe(2, [['$share/q/codes/#', 1]]), [0x97], '0x97 Quota exceeded: sharedMembersMax 1 is held by codes-a');
  t.notOk(raw.closed, 'the raw connection stays open');
  await client.unsubscribeAsync('$share/c/codes/#');
  await eventually(async () => (await raw.subscribe(3 + Math.floor(Math.random() * 1000), [['$share/q/codes/#', 1]]))[0] === 1, 10_000, 200);
  t.pass('admitted once the other membership left');
});

t.test('No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82 (MQTT-3.8.3-4)', async (t) => {
  const proc = await commonBroker();
  const raw = await Raw5.open(t, proc, 'nl-raw');
  raw.sock.write(packet(0x82, Buffer.concat([u16(1), Buffer.from([0]), str('$share/n/nl/#'), Buffer.from([0x04 | 1])])));
  await eventually(() => raw.closed, 5_000);
  const disconnect = raw.packets.find(([b]) => b === 0xe0);
  t.ok(disconnect, 'DISCONNECT sent before closing');
  t.equal(disconnect?.[1][0], 0x82, 'reason 0x82 Protocol Error');
});

t.test('shared deliveries carry the subscription identifier and the publisher\'s properties (user properties in order, content type)', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'props', 1);
  const { client } = await connect5(t, proc, 'props-member');
  await client.subscribeAsync('$share/p/props/#', { qos: 1, properties: { subscriptionIdentifier: 42 } });
  await stable(proc, 'p', 1);
  const got: Array<{ payload: string; qos: number; properties?: mqtt.IPublishPacket['properties'] }> = [];
  client.on('message', (_topic, payload, p) => got.push({ payload: payload.toString(), qos: p.qos, properties: p.properties }));
  await publishAll(proc, () => 'props/x', 1, 'props', { qos: 1, properties: { userProperties: { site: 'north', unit: 'C' }, contentType: 'text/plain' } });
  await eventually(() => got.length >= 1, 10_000);
  const props = got[0].properties!;
  t.same([props.subscriptionIdentifier].flat(), [42], 'Subscription Identifier of the shared subscription');
  t.same(props.userProperties, { site: 'north', unit: 'C' }, 'User Properties from the record\'s headers');
  t.equal(props.contentType, 'text/plain', 'Content Type');
  t.equal(got[0].qos, 1);
});

t.test('a member\'s Receive Maximum bounds its shared deliveries in flight; each PUBACK lets one more go', async (t) => {
  // sharedInflightMax (32) is above the client's Receive Maximum (2): the client's limit rules
  const proc = await commonBroker();
  await createTopic(proc, 'rm', 1);
  const raw = await Raw5.open(t, proc, 'rm-raw', Buffer.from([3, 0x21, 0x00, 0x02])); // properties: Receive Maximum = 2
  t.same(await raw.subscribe(1, [['$share/r/rm/#', 1]]), [1]);
  await stable(proc, 'r', 1);
  const sent = await publishAll(proc, (i) => `rm/d${i}`, 5, 'rm');
  await eventually(() => raw.publishes().length >= 2, 10_000);
  await sleep(500);
  t.equal(raw.publishes().length, 2, 'exactly Receive Maximum unacknowledged deliveries');
  raw.puback(raw.publishes()[0][0]);
  await eventually(() => raw.publishes().length >= 3, 5_000);
  await sleep(300);
  t.equal(raw.publishes().length, 3, 'one PUBACK, one more delivery');
  for (let i = 1; i < 5; i++) {
    await eventually(() => raw.publishes().length > i, 5_000);
    raw.puback(raw.publishes()[i][0]);
  }
  await eventually(() => raw.publishes().length >= 5, 5_000);
  t.same(raw.publishes().map(([, p]) => p), sent, 'every record, in partition order');
});

t.test('a v5 persistent session keeps its shared subscription: restored past aedes\' own refusal, the device rejoins the group', async (t) => {
  const proc = await commonBroker();
  await createTopic(proc, 'keep', 1);
  const opts = { clean: false, properties: { sessionExpiryInterval: 300 } };
  const first = await connect5(t, proc, 'keep-member', opts);
  await first.client.subscribeAsync('$share/k/keep/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });
  await stable(proc, 'k', 1);
  await first.client.endAsync();
  const again = await connect5(t, proc, 'keep-member', opts); // no SUBSCRIBE this time
  t.equal(again.connack.sessionPresent, true, 'session present');
  await stable(proc, 'k', 1);
  const got: Array<{ payload: string; properties?: mqtt.IPublishPacket['properties'] }> = [];
  again.client.on('message', (_topic, payload, p) => got.push({ payload: payload.toString(), properties: p.properties }));
  const sent = await publishAll(proc, (i) => `keep/d${i}`, 3, 'keep');
  await eventually(() => got.length >= 3, 10_000);
  t.same(got.map((g) => g.payload).sort(), [...sent].sort(), 'the restored membership receives');
  t.same([got[0].properties?.subscriptionIdentifier].flat(), [7], 'with the identifier given at the first SUBSCRIBE');
});
