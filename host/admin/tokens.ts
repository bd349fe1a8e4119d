// `tributary tokens hash [--new]`: what goes in an `http.tokens` entry's `hash:` so the config
// file never holds the bearer token itself (host/security/tokens.ts says why SHA-256 suffices).
//
//   tokens hash          reads one token from standard input (a trailing newline is dropped) and
//                        prints `sha256:<64 hex>`; the token never appears in argv (ps, shell history).
//   tokens hash --new    makes a new token (32 random bytes, base64url: 43 characters) and prints
//                        `token: …` (give it to the client) and `hash: sha256:…` (put it in the config).
//
// Works offline: no broker is contacted. Exit codes as the other admin commands: 0 ok, 2 bad usage.
import { randomBytes } from 'node:crypto';
import { TOKEN_CHARS_MIN, tokenHash } from '../security/index.js';
import { parseArgs } from './args.js';

class UsageError extends Error {}

const NEW_TOKEN_BYTES = 32; // 256 bits: no search can find it, so its unsalted SHA-256 is safe at rest

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The token on standard input, checked as the broker will check it; the messages never quote it. */
export function tokenFromInput(text: string): string {
  const token = text.replace(/\r?\n$/, '');
  if (token.includes('\n')) throw new UsageError('standard input has more than one line: give one token per run');
  if (/\s/.test(token)) throw new UsageError('the token contains white space: `Authorization: Bearer` carries one word, so no client could present it');
  if (token.length < TOKEN_CHARS_MIN) throw new UsageError(`the token has ${token.length} characters; at least ${TOKEN_CHARS_MIN} are needed (tokens hash --new makes a 43-character one)`);
  return token;
}

async function hashCommand(argv: string[]): Promise<string> {
  const { positional, flags } = parseArgs(argv, new Set(['--new']), (m) => new UsageError(m));
  for (const name of flags.keys()) if (name !== '--new') throw new UsageError(`unknown option ${name}; the only option is --new`);
  if (positional.length > 0) throw new UsageError('the token is read from standard input, not the command line (argv is visible to other users in ps)');
  if (flags.has('--new')) {
    const token = randomBytes(NEW_TOKEN_BYTES).toString('base64url');
    return `token: ${token}\nhash: ${tokenHash(token)}`;
  }
  return tokenHash(tokenFromInput(await readStdin()));
}

export async function runTokensCli(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub !== 'hash') throw new UsageError(`unknown tokens command "${sub ?? ''}" (hash)`);
    process.stdout.write((await hashCommand(rest)) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`tributary tokens: ${(err as Error).message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
