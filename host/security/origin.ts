// The `Origin` rule for WebSocket upgrades (issue 13, finding 4). Browsers send `Origin` on every
// WebSocket handshake and let any page open a socket to any host, so without this check a page on
// another site could read the broker through a visitor's browser (cross-site WebSocket
// hijacking). Non-browser clients (mqtt.js in Node, kcat, devices) send no Origin: allowed.
// Same origin: the Origin's host[:port] equals the Host header the request came with. Anything
// else must be listed in `security.allowedOrigins` (exactly, scheme included) or the list holds `*`.

/** May a WebSocket upgrade carrying `origin` (empty = absent), sent to `host`, proceed? */
export function originAllowed(origin: string, host: string, allowed: readonly string[]): boolean {
  if (origin === '') return true;
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // `null` (sandboxed frames, file://) and garbage
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && host !== '' && url.host === host.toLowerCase();
}
