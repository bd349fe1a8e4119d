// A preload for a spawned broker (`node --import <this file>`): appends the URL of every module
// the process loads to the file named by TEST_MODULE_LIST, one per line: ES modules through a
// resolve hook (node:module register, run on the loader thread) and CommonJS modules through
// Module.prototype.require (what createRequire's functions call). The footprint test reads it to
// prove a door that is off never loads its code.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const out = process.env.TEST_MODULE_LIST;
if (out) {
  register(new URL('./module-watch-hooks.js', import.meta.url));
  const proto = (Module as unknown as { prototype: { require(id: string): unknown } }).prototype;
  const original = proto.require;
  proto.require = function (this: { filename?: string }, id: string) {
    appendFileSync(out, `require:${id} from ${this.filename ? pathToFileURL(this.filename).href : '?'}\n`);
    return original.call(this, id);
  };
}
