// Loads the AssemblyScript core (build/core.wasm) once per process.
//
// Memory policy: the module's memory is sized at build time (asconfig.json: initial ==
// maximum) and never grows, so the views made here stay valid for the life of the process.
// Pages the core never touches are never backed by RAM, so a large reservation costs nothing.
//
// Scratch policy: every exported function works on (ptr, len) regions of that memory. The
// host lays regions out from `heapBase` for the duration of one synchronous call; nothing in
// wasm memory outlives the call that wrote it, so no allocator and no locking are needed
// (JavaScript runs one call at a time).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The module's exports are declared by whoever adds them (crc32c.ts, record-batch.ts, lz4.ts, ...).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CoreExports = Record<string, any> & { memory: WebAssembly.Memory };

const wasmPath = fileURLToPath(new URL('../../../build/core.wasm', import.meta.url));

function instantiate(): CoreExports {
  const bytes = readFileSync(wasmPath);
  const module = new WebAssembly.Module(bytes);
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(_msg: number, _file: number, line: number, column: number): never {
        throw new Error(`wasm core aborted at ${line}:${column}`);
      },
    },
  });
  return instance.exports as CoreExports;
}

/** The core's exports. */
export const core: CoreExports = instantiate();

/** A view over the whole of wasm memory; valid forever because memory never grows. */
export const memU8 = new Uint8Array(core.memory.buffer);
export const memView = new DataView(core.memory.buffer);

/** First byte of wasm memory free for scratch regions (above the core's static data). */
export const heapBase: number = typeof core.heapBase === 'function' ? (core.heapBase() as number) : 65536;

/** Bytes of scratch space available above heapBase. */
export const scratchBytes: number = core.memory.buffer.byteLength - heapBase;
