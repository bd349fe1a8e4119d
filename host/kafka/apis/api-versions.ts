// ApiVersions (key 18), versions 0–3; v3+ flexible.
//   v0: error_code, api_keys[api_key, min_version, max_version]
//   v1: + throttle_time_ms
//   v2: same as v1
//   v3: flexible; request carries client_software_name/version; response may carry supported
//       and finalized features as tagged fields (we have none)
// The list is derived from the registered APIs (each declares its range, host/kafka/apis/registry.ts,
// checked against its handler by a test), so it never claims what we cannot answer.
// A request for a version we do not support is answered by the server itself with error 35 and
// our list in v0 format (Kafka's rule, so a newer client can retry with a version we speak).
import { arr, f, struct, type Schema } from '../protocol/schema.js';
import type { ApiDeclaration, ApiHandler, RequestContext } from './types.js';
import { ERRORS } from '../../errors/index.js';

export const API_VERSIONS_KEY = 18;

const request: Schema = [
  f('clientSoftwareName', 'string', '3+'),
  f('clientSoftwareVersion', 'string', '3+'),
];

const response: Schema = [
  f('errorCode', 'int16', '0+'),
  arr('apiKeys', '0+', [f('apiKey', 'int16', '0+'), f('minVersion', 'int16', '0+'), f('maxVersion', 'int16', '0+')]),
  f('throttleTimeMs', 'int32', '1+'),
  arr('supportedFeatures', '3+', [f('name', 'string', '3+'), f('minVersion', 'int16', '3+'), f('maxVersion', 'int16', '3+')], { tagged: '3+', tag: 0 }),
  f('finalizedFeaturesEpoch', 'int64', '3+', { tagged: '3+', tag: 1, default: -1 }),
  arr('finalizedFeatures', '3+', [f('name', 'string', '3+'), f('maxVersionLevel', 'int16', '3+'), f('minVersionLevel', 'int16', '3+')], { tagged: '3+', tag: 2 }),
  f('zkMigrationReady', 'bool', '3+', { tagged: '3+', tag: 3 }),
];
void struct;

/** Our supported versions, ascending by key. */
export function apiVersionList(handlers: ReadonlyMap<number, ApiDeclaration>): Array<{ apiKey: number; minVersion: number; maxVersion: number }> {
  return [...handlers.values()]
    .sort((a, b) => a.apiKey - b.apiKey)
    .map((h) => ({ apiKey: h.apiKey, minVersion: h.minVersion, maxVersion: h.maxVersion }));
}

export const apiVersions: ApiHandler = {
  apiKey: API_VERSIONS_KEY,
  name: 'ApiVersions',
  minVersion: 0,
  maxVersion: 3,
  flexibleFrom: 3,
  request,
  response,
  async handle(_req, ctx: RequestContext) {
    return { errorCode: ERRORS.NONE.kafka, apiKeys: apiVersionList(ctx.handlers), throttleTimeMs: 0 };
  },
};

export const apiVersionsResponseSchema = response;
