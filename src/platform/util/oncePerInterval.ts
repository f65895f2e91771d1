// Lets through one event per key (a client IP) per interval and counts the rest, so a log line
// about a client's refusals is written once a minute however fast they come. The keys a client
// controls, so memory is bounded: at most `maxKeys` are remembered, the least recently passed
// one forgotten first (a Map keeps insertion order; a passing key is moved to its end). A client
// pushed out by many others is only written about again sooner; nothing else depends on it.

export type Passage = { readonly pass: true; /** Events of this key held back since it last passed. */ readonly held: number } | { readonly pass: false };

interface KeyState {
  passedAt: number;
  held: number;
}

export class OncePerInterval {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly intervalMs: number,
    private readonly maxKeys: number,
  ) {}

  take(key: string, now: number = Date.now()): Passage {
    const state = this.keys.get(key);
    if (state !== undefined && now - state.passedAt < this.intervalMs) {
      state.held += 1;
      return { pass: false };
    }
    const held = state?.held ?? 0;
    this.keys.delete(key);
    this.keys.set(key, { passedAt: now, held: 0 });
    if (this.keys.size > this.maxKeys) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
    return { pass: true, held };
  }
}
