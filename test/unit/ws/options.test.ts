// Purpose: the gateway's options are validated at start, each bad value refused with a message naming the option.
import t from 'tap';
import { defaultWsGatewayOptions, validateWsGatewayOptions, type WsGatewayOptions } from '../../../gateway/ws/options.js';

const withOpt = (o: Partial<WsGatewayOptions>): WsGatewayOptions => ({ ...defaultWsGatewayOptions, ...o });

t.test('ws options: the defaults are valid and every limit is a positive number', async (t) => {
  t.doesNotThrow(() => validateWsGatewayOptions(defaultWsGatewayOptions));
  t.equal(defaultWsGatewayOptions.port, 8080);
  t.equal(defaultWsGatewayOptions.path, '/ws');
});

t.test('ws options: bad values are refused naming the option', async (t) => {
  const cases: Array<[Partial<WsGatewayOptions>, RegExp]> = [
    [{ maxSockets: 0 }, /maxSockets/],
    [{ maxPayloadBytes: -1 }, /maxPayloadBytes/],
    [{ maxSubscriptionsPerSocket: 1.5 }, /maxSubscriptionsPerSocket/],
    [{ httpBodyBytesMax: Number.NaN }, /httpBodyBytesMax/],
    [{ tailLingerMs: -1 }, /tailLingerMs/],
    [{ tailLingerMs: 30, tailLingerMaxMs: 20 }, /tailLingerMaxMs/],
    [{ idleTimeoutSec: 4 }, /idleTimeoutSec must be 0 or at least 8/],
    [{ port: 70000 }, /port/],
    [{ path: 'ws' }, /path must start with/],
    [{ maxBackpressureBytes: 1000 }, /maxBackpressureBytes/],
    [{ tokens: [{ token: 'short', read: [], write: [] }] }, /tokens\[0\]\.token must be a string of at least 8/],
    [{ tokens: [{ token: 'long-enough-token', read: 'x' as unknown as string[], write: [] }] }, /read and \.write/],
  ];
  for (const [o, message] of cases) t.throws(() => validateWsGatewayOptions(withOpt(o)), { message }, JSON.stringify(o));
  t.doesNotThrow(() => validateWsGatewayOptions(withOpt({ idleTimeoutSec: 0, port: 0 })), 'idle timeout off and port 0 are allowed');
});
