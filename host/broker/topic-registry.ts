// The durable list of topics: name, partition count, id and config overrides. The metadata
// file store (host/broker/metadata/file-store.ts) writes it when topic records are applied.
//
// On disk: `<dataDir>/topics.json`, one JSON document:
//   { "format": "tributary-topics", "version": 1,
//     "topics": [{ "name", "topicId", "partitions", "createdMs", "overrides": { key: value } }],
//     "pendingDeletes": [{ "name", "topicId", "partitions" }] }
//
// Crash policy: every change writes the whole document to `topics.json.tmp`, fsyncs it,
// renames it over `topics.json` and fsyncs the directory, so after a power cut the file is
// either the old document or the new one, never a mix. A leftover `.tmp` is an unfinished
// write and is ignored (and replaced by the next write). A `topics.json` that does not parse
// stops the broker with its path: silently starting with no topics would orphan their data.
//
// Order of operations (who is durable first) is the broker's: a topic is recorded before its
// directories are made (a crash leaves a topic whose empty partitions are created at start);
// a deletion is recorded as pending before its files go (a crash finishes it at next start).
import { open, readFile, rename, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { TopicConfig } from './api.js';
import { topicNameProblem } from './topic-name.js';
import { validateTopicConfig } from './topic-config.js';

export const TOPICS_FILE = 'topics.json';
const FORMAT = 'tributary-topics';
const VERSION = 1;

/** One topic as topics.json stores it. */
export interface RegistryTopic {
  name: string;
  topicId: string;
  partitions: number;
  createdMs: number;
  overrides: Partial<TopicConfig>;
}

export interface PendingDelete {
  name: string;
  topicId: string;
  partitions: number;
}

interface RegistryState {
  topics: Map<string, RegistryTopic>;
  pendingDeletes: PendingDelete[];
}

export class TopicRegistry {
  private state: RegistryState;

  private constructor(
    readonly dataDir: string,
    state: RegistryState,
  ) {
    this.state = state;
  }

  /** Reads `<dataDir>/topics.json` (creating the data dir; no file = no topics yet). */
  static async load(dataDir: string): Promise<TopicRegistry> {
    await mkdir(dataDir, { recursive: true });
    const path = join(dataDir, TOPICS_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new TopicRegistry(dataDir, { topics: new Map(), pendingDeletes: [] });
      throw err;
    }
    return new TopicRegistry(dataDir, parseRegistry(text, path));
  }

  static newTopicId(): string {
    return randomUUID();
  }

  get(name: string): RegistryTopic | undefined {
    return this.state.topics.get(name);
  }

  topics(): RegistryTopic[] {
    return [...this.state.topics.values()];
  }

  get size(): number {
    return this.state.topics.size;
  }

  pendingDeletes(): PendingDelete[] {
    return [...this.state.pendingDeletes];
  }

  /**
   * Applies `change` to a copy of the state and makes it durable; the in-memory state moves
   * only once the write succeeded, so a failed write leaves both the file and memory as they were.
   */
  async update(change: (draft: { topics: Map<string, RegistryTopic>; pendingDeletes: PendingDelete[] }) => void): Promise<void> {
    const draft: RegistryState = {
      topics: new Map([...this.state.topics].map(([k, v]) => [k, { ...v, overrides: { ...v.overrides } }])),
      pendingDeletes: this.state.pendingDeletes.map((d) => ({ ...d })),
    };
    change(draft);
    await writeDurably(this.dataDir, serialise(draft));
    this.state = draft;
  }
}

function serialise(state: RegistryState): string {
  const doc = {
    format: FORMAT,
    version: VERSION,
    topics: [...state.topics.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    pendingDeletes: state.pendingDeletes,
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

function parseRegistry(text: string, path: string): RegistryState {
  const bad = (why: string): never => {
    throw new Error(`${path} is not a valid topic registry (${why}); refusing to start without it. Restore it from a backup or move it away to start empty.`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return bad(`not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) return bad('not an object');
  const d = doc as Record<string, unknown>;
  if (d.format !== FORMAT) return bad(`format is ${JSON.stringify(d.format)}`);
  if (d.version !== VERSION) return bad(`version ${JSON.stringify(d.version)} is not ${VERSION}`);
  if (!Array.isArray(d.topics)) return bad('no topics array');
  const topics = new Map<string, RegistryTopic>();
  for (const raw of d.topics as unknown[]) {
    const t = raw as Record<string, unknown>;
    const problem = topicNameProblem(t?.name);
    if (problem) return bad(problem);
    const name = t.name as string;
    if (topics.has(name)) return bad(`topic ${name} listed twice`);
    if (!Number.isSafeInteger(t.partitions) || (t.partitions as number) < 1) return bad(`topic ${name} has partitions=${JSON.stringify(t.partitions)}`);
    if (typeof t.topicId !== 'string') return bad(`topic ${name} has no topicId`);
    let overrides: Partial<TopicConfig>;
    try {
      overrides = validateTopicConfig((t.overrides ?? {}) as Record<string, unknown>);
    } catch (err) {
      return bad(`topic ${name}: ${(err as Error).message}`);
    }
    topics.set(name, {
      name,
      topicId: t.topicId,
      partitions: t.partitions as number,
      createdMs: typeof t.createdMs === 'number' ? t.createdMs : 0,
      overrides,
    });
  }
  const pendingDeletes: PendingDelete[] = [];
  for (const raw of (Array.isArray(d.pendingDeletes) ? d.pendingDeletes : []) as unknown[]) {
    const p = raw as Record<string, unknown>;
    if (topicNameProblem(p?.name) || !Number.isSafeInteger(p.partitions)) return bad(`bad pending delete ${JSON.stringify(raw)}`);
    pendingDeletes.push({ name: p.name as string, topicId: String(p.topicId), partitions: p.partitions as number });
  }
  return { topics, pendingDeletes };
}

/** Temp file, fsync, rename over, fsync the directory (so the rename itself is durable). */
export async function writeDurably(dir: string, text: string, fileName = TOPICS_FILE, mode = 0o644): Promise<void> {
  const path = join(dir, fileName);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
