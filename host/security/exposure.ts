// Mosquitto 2.0's rule for where a node may listen (issue 13): a listener on a non-loopback
// address must have authentication, or the operator must have said, explicitly, that anonymous
// clients are fine (`security.allowAnonymous: true`, logged as a warning at every start). The
// default top-level `host` is 127.0.0.1, so a fresh node is reachable from this machine only, and
// its start-up log names the settings that open it.
//
// Pure: the node passes each enabled listener's address and whether that door authenticates its
// clients; the answer is the problems (each naming the keys to set) and the warnings to log.

export interface ExposedListener {
  /** Config key of the address, e.g. `kafka.host` or `host`. */
  hostKey: string;
  name: string;
  host: string;
  /** The door checks credentials itself (MQTT `mqtt.auth.enabled`, HTTP `http.tokens`, Kafka SASL when anonymous is off). */
  authenticated: boolean;
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
        `set security.allowAnonymous: true to allow that, turn on this door's authentication, or bind it to 127.0.0.1`,
    );
  }
  return { problems, warnings, loopbackOnly };
}
