// Purpose: Raft messages survive encode → decode unchanged for every type and many random
// shapes, and hostile frames get a specific error from the one table: truncated anywhere →
// CORRUPT_MESSAGE, oversized → MESSAGE_TOO_LARGE (from the length prefix alone), another version
// → UNSUPPORTED_VERSION, unknown type → INVALID_REQUEST, a lying entry count → CORRUPT_MESSAGE
// before anything is allocated for it.
import t from 'tap';
import { FRAME_HEADER_BYTES, decodeMessage, encodeMessage, frameLength } from '../../../host/cluster/raft-codec.js';
import type { Entry, Message } from '../../../host/cluster/raft-types.js';
import { BrokerError } from '../../../host/errors/broker-error.js';
import { prng } from '../../helpers/codec-inputs.js';

const LIMIT = 1 << 20;

function randomMessage(rnd: () => number): Message {
  const int = (max: number) => Math.floor(rnd() * max);
  const big = () => (rnd() < 0.2 ? Number.MAX_SAFE_INTEGER - int(3) : int(1_000_000));
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const head = { from: 1 + int(7), to: 1 + int(7), term: big() };
  switch (int(7)) {
    case 0:
      return { type: 'PreVote', ...head, lastIndex: big(), lastTerm: big() };
    case 1:
      return { type: 'Vote', ...head, lastIndex: big(), lastTerm: big() };
    case 2:
      return { type: 'PreVoteResp', ...head, reject: rnd() < 0.5 };
    case 3:
      return { type: 'VoteResp', ...head, reject: rnd() < 0.5 };
    case 4: {
      const n = int(5);
      const entries: Entry[] = Array.from({ length: n }, (_, i) => ({ index: 10 + i, term: big(), data: bytes(int(40)) }));
      return { type: 'Append', ...head, prevIndex: big(), prevTerm: big(), commit: big(), entries };
    }
    case 5:
      return { type: 'AppendResp', ...head, reject: rnd() < 0.5, index: big(), hintIndex: big(), hintTerm: big() };
    default:
      return { type: 'Snapshot', ...head, snapshot: { index: big(), term: big(), voters: [1, 2, 3].slice(0, 1 + int(3)), data: bytes(int(100)) } };
  }
}

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof BrokerError ? err.code : `not a BrokerError: ${(err as Error).message}`;
  }
};

t.test('raft codec: 5000 random messages of every type round-trip', (t) => {
  const rnd = prng(2026);
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const m = randomMessage(rnd);
    seen.add(m.type);
    const frame = encodeMessage(m);
    const back = decodeMessage(frame, LIMIT);
    if (JSON.stringify(back) !== JSON.stringify(m)) {
      t.fail(`message ${i} (${m.type}) changed: ${JSON.stringify(m)} → ${JSON.stringify(back)}`);
      break;
    }
  }
  t.equal(seen.size, 7, 'every message type was drawn');
  t.end();
});

t.test('raft codec: every truncation of a frame is CORRUPT_MESSAGE', (t) => {
  const rnd = prng(7);
  for (let i = 0; i < 50; i++) {
    const frame = encodeMessage(randomMessage(rnd));
    for (let cut = 0; cut < frame.length; cut++) {
      const code = codeOf(() => decodeMessage(frame.subarray(0, cut), LIMIT));
      if (code !== 'CORRUPT_MESSAGE') {
        t.fail(`frame ${i} cut at ${cut}/${frame.length}: ${code}`);
        return t.end();
      }
    }
  }
  t.pass('all cuts of 50 frames refused with CORRUPT_MESSAGE');
  t.end();
});

t.test('raft codec: hostile frames get specific errors', (t) => {
  const append = encodeMessage({ type: 'Append', from: 1, to: 2, term: 3, prevIndex: 4, prevTerm: 3, commit: 4, entries: [{ index: 5, term: 3, data: new Uint8Array(100) }] });
  t.equal(codeOf(() => decodeMessage(append, 64)), 'MESSAGE_TOO_LARGE', 'a frame over the limit');
  t.equal(codeOf(() => frameLength(Uint8Array.of(0xff, 0xff, 0xff, 0xf0), 0, LIMIT)), 'MESSAGE_TOO_LARGE', 'refused from the 4-byte prefix alone');
  t.equal(frameLength(Uint8Array.of(0, 0), 0, LIMIT), null, 'fewer than 4 bytes: wait for more');
  t.equal(frameLength(append, 0, LIMIT), append.length);

  const v2 = append.slice();
  v2[4] = 2;
  t.equal(codeOf(() => decodeMessage(v2, LIMIT)), 'UNSUPPORTED_VERSION');
  const badType = append.slice();
  badType[5] = 99;
  t.equal(codeOf(() => decodeMessage(badType, LIMIT)), 'INVALID_REQUEST');

  const trailing = new Uint8Array(append.length + 3);
  trailing.set(append);
  new DataView(trailing.buffer).setUint32(0, trailing.length - 4);
  t.equal(codeOf(() => decodeMessage(trailing, LIMIT)), 'CORRUPT_MESSAGE', 'bytes after the body');

  // An entry count of 2^32-1 with a few bytes behind it: refused before allocating.
  const lying = append.slice();
  new DataView(lying.buffer).setUint32(FRAME_HEADER_BYTES + 24, 0xffffffff);
  t.equal(codeOf(() => decodeMessage(lying, LIMIT)), 'CORRUPT_MESSAGE', 'an entry count larger than the frame');

  const resp = encodeMessage({ type: 'VoteResp', from: 1, to: 2, term: 3, reject: true });
  const badBool = resp.slice();
  badBool[FRAME_HEADER_BYTES] = 7;
  t.equal(codeOf(() => decodeMessage(badBool, LIMIT)), 'CORRUPT_MESSAGE', 'a boolean that is not 0 or 1');

  const hugeTerm = resp.slice();
  hugeTerm[14] = 0xff; // high byte of the term
  t.equal(codeOf(() => decodeMessage(hugeTerm, LIMIT)), 'CORRUPT_MESSAGE', 'a term beyond 2^53');
  t.end();
});

t.test('raft codec: random garbage never crashes the decoder', (t) => {
  const rnd = prng(99);
  const codes = new Map<string, number>();
  for (let i = 0; i < 5000; i++) {
    const frame = encodeMessage(randomMessage(rnd));
    const flips = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < flips; k++) frame[Math.floor(rnd() * frame.length)] = Math.floor(rnd() * 256);
    const code = codeOf(() => decodeMessage(frame, LIMIT));
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  t.comment(JSON.stringify([...codes]));
  t.notOk([...codes.keys()].some((c) => c.startsWith('not a BrokerError')), 'every failure is a BrokerError');
  t.end();
});
