// TLS for the admin commands (`tributary topics|produce|consume|groups` over HTTP, `users|acls`
// over Kafka): which flags turn it on, the files they name, and what a TLS failure tells the user.
//
//   --tls                 speak TLS (TRIBUTARY_TLS=1); implied by an https:// --broker URL and by
//                         any of the three files below
//   --cacert FILE         PEM CA bundle the broker's certificate must chain to (TRIBUTARY_CACERT);
//                         absent = the system's CAs. The certificate is always verified, name too.
//   --cert FILE --cert-key FILE  this client's certificate and key, for a listener with
//                         tls.requestCert (TRIBUTARY_CERT, TRIBUTARY_CERT_KEY); both or neither.
//                         Not `--key`: `produce --key` is the record key (the CLI's contract).
//
// A problem with a file is a usage error naming the flag (exit 2); a certificate the broker shows
// and we do not trust, or one of ours it refuses, is a message naming the flag that fixes it.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

export const TLS_FLAGS = ['--tls', '--cacert', '--cert', '--cert-key'] as const;

/** The flags as given on the command line (last value wins), else the environment. */
export interface TlsFlagValues {
  tls: boolean;
  cacert?: string;
  cert?: string;
  key?: string;
}

export function tlsFlagValues(flag: (name: string) => string | undefined, env: NodeJS.ProcessEnv): TlsFlagValues {
  const on = flag('--tls') ?? env.TRIBUTARY_TLS;
  return {
    tls: on !== undefined && on !== '' && on !== '0' && on !== 'false',
    cacert: flag('--cacert') ?? env.TRIBUTARY_CACERT,
    cert: flag('--cert') ?? env.TRIBUTARY_CERT,
    key: flag('--cert-key') ?? env.TRIBUTARY_CERT_KEY,
  };
}

/** True when the values ask for TLS (--tls, or any file). */
export function wantsTls(v: TlsFlagValues): boolean {
  return v.tls || v.cacert !== undefined || v.cert !== undefined || v.key !== undefined;
}

function readFlagFile(flagName: string, env: string, file: string, usage: (m: string) => Error): Buffer {
  try {
    const bytes = readFileSync(file);
    if (!/-----BEGIN [A-Z0-9 ]+-----/.test(bytes.toString('latin1'))) throw usage(`${flagName} ${file}: not a PEM file (no -----BEGIN … ----- line)`);
    return bytes;
  } catch (err) {
    if (!(err as NodeJS.ErrnoException).code) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw usage(`${flagName} ${file} (or ${env}): ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : `cannot read (${code})`}`);
  }
}

/** `tls.connect` / `https.request` options from the flags; throws usage errors naming the flag. */
export function adminTlsOptions(v: TlsFlagValues, usage: (m: string) => Error): ConnectionOptions {
  if ((v.cert === undefined) !== (v.key === undefined)) throw usage(`a client certificate needs both --cert and --cert-key (or TRIBUTARY_CERT and TRIBUTARY_CERT_KEY); ${v.cert === undefined ? '--cert' : '--cert-key'} is missing`);
  return {
    ...(v.cacert !== undefined ? { ca: readFlagFile('--cacert', 'TRIBUTARY_CACERT', v.cacert, usage) } : {}),
    ...(v.cert !== undefined ? { cert: readFlagFile('--cert', 'TRIBUTARY_CERT', v.cert, usage) } : {}),
    ...(v.key !== undefined ? { key: readFlagFile('--cert-key', 'TRIBUTARY_CERT_KEY', v.key, usage) } : {}),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  };
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE']);

/**
 * What a connection error means for the user, naming the flag that fixes it, or null when it is
 * not about TLS. `tls`: whether we spoke TLS; `clientCert`: whether we presented a certificate.
 */
export function explainTlsError(err: Error & { code?: string }, tls: boolean, clientCert: boolean, host: string): string | null {
  const code = err.code ?? '';
  const text = err.message ?? '';
  if (UNTRUSTED.has(code)) return `the broker's certificate is not signed by a CA we trust (${code}): pass that CA with --cacert FILE (or TRIBUTARY_CACERT)`;
  if (code === 'CERT_HAS_EXPIRED') return `the broker's certificate has expired (${code}): renew it on the node (then kill -HUP its process)`;
  if (code === 'CERT_NOT_YET_VALID') return `the broker's certificate is not valid yet (${code}): check the clocks`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the broker's certificate does not name ${host} (${code}): connect by a name or address in its subjectAltName`;
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/.test(code) && !clientCert) return `the broker requires a client certificate (${code}): pass --cert FILE --cert-key FILE (or TRIBUTARY_CERT / TRIBUTARY_CERT_KEY)`;
  if (/ALERT_(CERTIFICATE_REVOKED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_EXPIRED|CERTIFICATE_UNKNOWN)/.test(code)) return `the broker refused our client certificate (${code}): check --cert (revoked, expired, or not signed by the CA the listener trusts)`;
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/.test(text)) return `the listener does not speak TLS (${code || text}): use http:// and drop --tls, --cacert, --cert, --cert-key`;
  if (!tls && (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up|closed the connection/.test(text))) return `the connection was closed before any answer (${code || text}): if the listener uses TLS, add --tls (for --broker: an https:// URL) and --cacert FILE`;
  if (tls && clientCert && (code === 'ECONNRESET' || /closed the connection|socket hang up/.test(text))) return `the broker closed the connection after the TLS handshake (${code || text}): it refuses our client certificate (--cert: revoked, expired, or from another CA); the node's log says which`;
  return null;
}
