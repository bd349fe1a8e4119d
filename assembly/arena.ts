// Scratch space for the host starts above the core's static data (tables, constants).
// Aligned to 64 bytes so wide loads from the host's regions start on a cache line.
export function heapBase(): usize {
  return (__heap_base + 63) & ~(<usize>63);
}
