// mqtt-packet's parser (aedes parses every MQTT connection with it) keeps the bytes of a packet
// still arriving in `require('bl')()`: a BufferListStream, i.e. bl's BufferList inside a
// readable-stream Duplex. The parser only appends, reads and consumes (append, consume, length,
// readUInt8/16/32, slice, toString), never pipes, writes or listens, so the stream is unused; but
// requiring `bl` loads readable-stream, a copy of Node's streams in 124 CommonJS modules (~0.45
// MiB of V8 heap that an idle gateway holds for nothing, docs/performance.md "Footprint"), and
// every connection's parser carries a Duplex's two stream states.
//
// Imported by the gateway before aedes and mqtt-packet load: the module cache entry for the `bl`
// that mqtt-packet resolves is filled with bl's own BufferList (bl/BufferList.js, the class the
// stream wraps; called without `new` it constructs itself, as `bl()` does), so the parser holds
// a plain buffer list. Nothing is changed if `bl` is already loaded (someone may use its stream),
// cannot be found, or its BufferList lacks a method the parser calls.
import Module, { createRequire } from 'node:module';

/** The methods mqtt-packet 9's parser calls on its list (parser.js). */
const PARSER_METHODS = ['append', 'consume', 'readUInt8', 'readUInt16BE', 'readUInt32BE', 'slice', 'toString'] as const;

/** Outcome, for the unit test and a debugger: what was done and why. */
export let parserBufferList: 'installed' | 'already loaded' | 'not found' | 'unexpected shape' = 'not found';

function installParserBufferList(): void {
  const require = createRequire(import.meta.url);
  let blPath: string;
  let bufferListPath: string;
  try {
    blPath = createRequire(require.resolve('mqtt-packet')).resolve('bl');
    bufferListPath = createRequire(blPath).resolve('./BufferList.js');
  } catch {
    return;
  }
  if (require.cache[blPath]) {
    parserBufferList = 'already loaded';
    return;
  }
  const BufferList: unknown = require(bufferListPath);
  const proto = (BufferList as { prototype?: Record<string, unknown> } | undefined)?.prototype;
  if (typeof BufferList !== 'function' || !PARSER_METHODS.every((m) => typeof proto?.[m] === 'function')) {
    parserBufferList = 'unexpected shape';
    return;
  }
  // A loaded CommonJS module whose exports are BufferList: `require('bl')` from mqtt-packet returns it.
  const entry = new (Module as unknown as new (id: string) => NodeJS.Module)(blPath);
  entry.filename = blPath;
  entry.loaded = true;
  entry.exports = BufferList;
  require.cache[blPath] = entry;
  parserBufferList = 'installed';
}

installParserBufferList();
