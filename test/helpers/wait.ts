/** Bounds a wait: rejects with a labelled error if `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout;
  const late = new Promise<never>((_, no) => {
    timer = setTimeout(() => no(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A callback that must be called exactly `n` times; extra calls throw. `done` resolves at n. */
export function times(
  n: number,
  label: string,
): { hit: () => void; done: Promise<void>; count: () => number } {
  let count = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  if (n === 0) resolve();
  return {
    hit() {
      count++;
      if (count > n) throw new Error(`${label}: called ${count} times, expected ${n}`);
      if (count === n) resolve();
    },
    done,
    count: () => count,
  };
}
