// Request and response headers (RequestHeader.json / ResponseHeader.json).
//
//   request header v1:  api_key int16 | api_version int16 | correlation_id int32 | client_id nullable string (int16 length)
//   request header v2:  v1 + tagged fields                   (used by every flexible request version)
//   response header v0: correlation_id int32
//   response header v1: v0 + tagged fields                   (flexible responses, except ApiVersions: always v0)
//
// client_id keeps its classic int16 length even in header v2 (the spec marks it
// flexibleVersions "none"), so a reader can parse it before knowing whether the API version is
// flexible.
import { readTaggedFields, Reader, Writer } from './codec.js';

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

/** Reads the v1 part of a request header (the tagged fields, for v2, are read by the caller). */
export function readRequestHeader(r: Reader): RequestHeader {
  const apiKey = r.int16('header.apiKey');
  const apiVersion = r.int16('header.apiVersion');
  const correlationId = r.int32('header.correlationId');
  const clientId = r.string(false, true, 'header.clientId');
  return { apiKey, apiVersion, correlationId, clientId };
}

/** Skips a header v2 tagged-field section (none are defined for requests that we use). */
export function readHeaderTaggedFields(r: Reader): void {
  readTaggedFields(r, undefined, undefined, 'header');
}

/**
 * Starts a response frame: 4-byte size placeholder, correlation id, and (header v1) an empty
 * tagged-field section. Patch the size with `finishFrame`.
 */
export function startResponse(correlationId: number, headerVersion: 0 | 1): Writer {
  const w = new Writer();
  w.int32(0);
  w.int32(correlationId);
  if (headerVersion === 1) w.uvarint(0);
  return w;
}

/** Patches the size prefix and returns the chunks to write, in order. */
export function finishFrame(w: Writer): Uint8Array[] {
  const size = w.length - 4;
  const chunks = w.finish();
  w.head.writeInt32BE(size, 0);
  return chunks;
}
