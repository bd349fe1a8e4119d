// Mosquitto 2.0's rule for where a node may listen (issue 13): a listener on a non-loopback
// address must have authentication, or the operator must have said, explicitly, that anonymous
// clients are fine (`security.allowAnonymous: true`, logged as a warning at every start). The
// default top-level `host` is 127.0.0.1, so a fresh node is reachable from this machine only, and
// its start-up log names the settings that open it.
//
// Pure: the node passes each enabled listener's address and whether that door authenticates its
// clients; the answer is the problems (each naming the keys to set) and the warnings to log.
//
// The inter-node listener (`cluster.listen`) falls under the same rule: whoever reaches it can
// speak Raft and read status, so off loopback it needs mutual TLS (`cluster.tls` with
// `requestCert: true`: only a certificate signed by the cluster's CA gets in) or the explicit
// `security.allowAnonymous: true`. TLS without client certificates hides the traffic but lets
// anyone in, as on the other doors.

export interface ExposedListener {
  /** Config key of the address, e.g. `kafka.host` or `host`. */
  hostKey: string;
  name: string;
  host: string;
  /** The door checks credentials itself (MQTT `mqtt.auth.enabled`, HTTP `http.tokens`, Kafka SASL when anonymous is off). */
  authenticated: boolean;
  /** What turns this door's authentication on, when it is not the door's own setting (the inter-node listener's mutual TLS). */
  remedy?: string;
}

/** The inter-node listener as the rule sees it: authenticated only by mutual TLS. */
export function clusterListener(listen: { host: string }, tls: { requestCert?: boolean } | null): ExposedListener {
  return { name: 'cluster', hostKey: 'cluster.listen', host: listen.host, authenticated: tls?.requestCert === true, remedy: 'set cluster.tls with requestCert: true (mutual TLS between the voters)' };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host) || host === '::ffff:127.0.0.1';
}

export interface ExposureVerdict {
  problems: string[];
  warnings: string[];
  /** True when every listener is on loopback (the info line says how to open them). */
  loopbackOnly: boolean;
}

export function checkExposure(listeners: readonly ExposedListener[], allowAnonymous: boolean | null): ExposureVerdict {
  const problems: string[] = [];
  const warnings: string[] = [];
  let loopbackOnly = true;
  for (const l of listeners) {
    if (isLoopback(l.host)) continue;
    loopbackOnly = false;
    if (l.authenticated) continue;
    if (allowAnonymous === true) {
      warnings.push(`${l.name} listener on ${l.host} accepts anonymous clients (security.allowAnonymous: true)`);
      continue;
    }
    problems.push(
      `${l.name} listener on ${l.host} (${l.hostKey}) would accept anonymous clients from the network: ` +
        `set security.allowAnonymous: true to allow that, ${l.remedy ?? "turn on this door's authentication"}, or bind it to 127.0.0.1`,
    );
  }
  return { problems, warnings, loopbackOnly };
}
