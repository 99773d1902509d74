// Which live gateway owns an email of the watched folder. Rendezvous (highest random weight)
// hashing rather than "hash mod n": when a gateway joins, only the keys it wins move (to it),
// and when one leaves only its own keys move. Two gateways whose views of the live set differ
// for a moment then disagree only about the keys of the gateway that joined or left, which is
// what the shared watcher's join grace and tie-break cover.

/** FNV-1a over UTF-16 code units, then murmur3's finaliser so that similar keys spread out. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The owner of `key` among `instances` (order does not matter); undefined when there is none.
 * Every gateway computes the same answer from the same set.
 */
export function ownerOf(key: string, instances: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const instance of instances) {
    const weight = hash32(`${instance}\u0000${key}`);
    // Equal weights are decided by the id, so that the answer does not depend on the order given.
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && instance < best)) {
      best = instance;
      bestWeight = weight;
    }
  }
  return best;
}
