#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50 --v8-pool-size=1 --expose-gc
// `tributary <command>`: `start` runs a node; the admin commands talk to a running broker.
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const USAGE = `usage: tributary <command> [options]

commands:
  start [--config FILE] [--data-dir DIR] [--host ADDR] [--kafka-port N] [--mqtt-port N]
        [--mqtt-ws-port N] [--http-port N] [--log-level LEVEL] [--set section.key=value ...]
                              run a broker node (see docs/configuration.md)
  topics list                 list topics
  topics describe TOPIC       partitions, offsets and config of a topic
  topics create TOPIC [--partitions N] [--config key=value ...]
  topics delete TOPIC
  produce TOPIC [--key K] [--partition N] [--value V]
                              produce one record, or one per line of standard input
  consume TOPIC [--partition N] [--offset earliest|latest|N] [--limit N] [--follow] [--json]
                              print records as PARTITION@OFFSET<tab>KEY<tab>VALUE, from every
                              partition unless --partition is given (a numeric --offset needs it)
  groups list                 list consumer groups
  groups describe GROUP       members, committed offsets and lag
  cluster status [--node HOST:PORT] [--json]
                              the metadata quorum: voters, controller, term, commit index,
                              each voter's match index and lag (read from a node's cluster.listen)
  users add NAME --password P|- [--mechanism SCRAM-SHA-256|SCRAM-SHA-512|both] [--iterations N]
                              (- reads the password from standard input)
  users list                  users and their SCRAM mechanisms
  users remove NAME [--mechanism M]
  acls add --principal User:NAME --operation OP (--topic T|--group G|--transactional-id X|--cluster)
           [--prefixed] [--deny] [--host H]
  acls list [same filters]    ACLs matching the filters (all without any)
  acls remove (same as add)   remove exactly that ACL
  tokens hash [--new]         sha256:<hex> of the token on standard input, for an http.tokens
                              entry's hash: (--new: make a random token, print it and its hash)
  uplink status [--data-dir DIR]
                              each uplink's link state, partitions, lag and bytes sent
                              (from the node's data dir, default ./data)

admin options: --broker URL   the broker's HTTP address (default http://127.0.0.1:8080,
                              or TRIBUTARY_BROKER); https://… when http.tls is set
  --token T                   bearer token for the HTTP API (or TRIBUTARY_TOKEN)
users/acls options: --kafka HOST:PORT   the Kafka listener (default 127.0.0.1:9092, or TRIBUTARY_KAFKA)
  --sasl-user U --sasl-password P       log in with SCRAM-SHA-512 (or TRIBUTARY_SASL_USER/_PASSWORD)
TLS (both kinds): --tls       speak TLS (or TRIBUTARY_TLS=1; implied by https:// and by the files)
  --cacert FILE               CA the broker's certificate must chain to (or TRIBUTARY_CACERT;
                              default: the system's CAs)
  --cert FILE --cert-key FILE client certificate and its key, for a listener with
                              tls.requestCert (or TRIBUTARY_CERT / TRIBUTARY_CERT_KEY)
  help, --help                this text
  version, --version          the version`;

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'));
  return pkg.version as string;
}

export async function runCli(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case 'start': {
      const { runNode } = await import('./node.js');
      return runNode(rest);
    }
    case 'topics':
    case 'produce':
    case 'consume':
    case 'groups': {
      const { runAdmin } = await import('./admin/index.js');
      const code = await runAdmin(command, rest, process.env);
      process.exitCode = code;
      return;
    }
    case 'cluster': {
      const { runClusterCommand } = await import('./admin/cluster-status.js');
      process.exitCode = await runClusterCommand(rest, process.env);
      return;
    }
    case 'users':
    case 'acls': {
      const { runSecurityAdmin } = await import('./admin/security.js');
      process.exitCode = await runSecurityAdmin(command, rest, process.env);
      return;
    }
    case 'tokens': {
      const { runTokensCli } = await import('./admin/tokens.js');
      process.exitCode = await runTokensCli(rest);
      return;
    }
    case 'uplink': {
      const { runUplinkCli } = await import('./admin/uplink.js');
      process.exitCode = await runUplinkCli(rest, process.env);
      return;
    }
    case 'version':
    case '--version':
      process.stdout.write(version() + '\n');
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      process.stderr.write(`tributary: unknown command "${command}"\n\n${USAGE}\n`);
      process.exitCode = 2;
  }
}

// Run when executed directly (the `tributary` bin); main.ts imports it instead.
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  runCli(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`tributary: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
