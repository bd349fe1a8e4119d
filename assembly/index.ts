// Exports of the wasm core: every function takes (ptr, len) regions of linear memory and
// returns a length or a status, never a managed object. One line per module.
export { heapBase } from './arena';
