const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * A new ULID (26 characters of Crockford base32: 48 bits of Unix ms, 80 random bits), usable as a
 * client_msg_id. Uses crypto.getRandomValues, present in browsers and node.
 */
export function ulid(now: number = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = crockford[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let rand = "";
  for (let i = 0; i < 16; i++) rand += crockford[bytes[i] % 32];
  return time + rand;
}
