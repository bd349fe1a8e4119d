// SaslHandshake (key 17), versions 0–1; not flexible.
//   v0: mechanism; response error_code, mechanisms[] — after v0 the SASL tokens travel as raw
//       frames outside Kafka's request format (pre-KIP-152). Listed in ApiVersions because
//       librdkafka's feature detection requires version 0 in the range before it uses v1, but
//       answered UNSUPPORTED_VERSION and the connection closed: every client we know
//       (librdkafka, kafkajs, the Java client) sends v1 once ApiVersions lists it.
//   v1: same fields; the tokens then travel in SaslAuthenticate requests.
// Starts (or, once authenticated, restarts for KIP-368 re-authentication) a SASL exchange with
// one of security.saslMechanisms; anything else is UNSUPPORTED_SASL_MECHANISM with the list, a
// handshake in the middle of an exchange ILLEGAL_SASL_STATE. TRIBUTARY-NODE (a cluster's nodes
// among themselves, host/security/node-identity.ts) is accepted on a cluster node, never listed.
import { arr, f, type Schema } from '../protocol/schema.js';
import { ERRORS } from '../../errors/index.js';
import type { ApiHandler, RequestContext } from './types.js';
import { NODE_SASL_MECHANISM } from '../../security/node-identity.js';

/** TRIBUTARY-NODE (another node of the cluster) is accepted on a cluster node's listener only, and never listed. */
function nodeMechanismOk(ctx: RequestContext, mechanism: string): boolean {
  return mechanism === NODE_SASL_MECHANISM && (ctx.security.store?.image().brokers?.size ?? 0) > 0;
}

const request: Schema = [f('mechanism', 'string', '0+')];
const response: Schema = [f('errorCode', 'int16', '0+'), arr('mechanisms', '0+', 'string')];

export const saslHandshake: ApiHandler = {
  apiKey: 17,
  name: 'SaslHandshake',
  minVersion: 0,
  maxVersion: 1,
  flexibleFrom: 99,
  request,
  response,
  async handle(req: { mechanism: string }, ctx: RequestContext) {
    const mechanisms = [...ctx.security.options.saslMechanisms];
    const s = ctx.session;
    if (ctx.apiVersion === 0) {
      ctx.logger.info({ mechanism: req.mechanism }, 'SaslHandshake v0 (raw SASL frames) is not supported: closing');
      ctx.closeAfterResponse();
      return { errorCode: ERRORS.UNSUPPORTED_VERSION.kafka, mechanisms };
    }
    if (s.state === 'handshaken' || s.state === 'scram') {
      ctx.logger.info({ mechanism: req.mechanism }, 'SaslHandshake during a SASL exchange: closing');
      ctx.closeAfterResponse();
      return { errorCode: ERRORS.ILLEGAL_SASL_STATE.kafka, mechanisms };
    }
    if (!mechanisms.includes(req.mechanism as never) && !nodeMechanismOk(ctx, req.mechanism)) {
      ctx.logger.info({ mechanism: req.mechanism, enabled: mechanisms }, 'SaslHandshake with a mechanism not enabled');
      ctx.closeAfterResponse();
      return { errorCode: ERRORS.UNSUPPORTED_SASL_MECHANISM.kafka, mechanisms };
    }
    s.state = 'handshaken';
    s.mechanism = req.mechanism;
    s.scram = null;
    return { errorCode: ERRORS.NONE.kafka, mechanisms };
  },
};
