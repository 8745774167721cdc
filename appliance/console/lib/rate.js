// How fast a long job goes and how long it still needs, from the samples
// the page's polling takes. No DOM: tested with node (web/console.rs).

// Samples older than this do not count: the rate follows the job's
// recent pace, not its average since the page opened.
const WINDOW_MS = 15000;

export class RateMeter {
  constructor() { this.samples = new Map(); }

  // Records that `key` (a job) is at `done` at `now` (milliseconds) and
  // returns its rate per second over the window, or null before there are
  // two samples a moment apart.
  sample(key, done, now) {
    const list = (this.samples.get(key) || []).filter((s) => now - s.now <= WINDOW_MS && s.done <= done);
    list.push({ now, done });
    this.samples.set(key, list);
    const first = list[0];
    const seconds = (now - first.now) / 1000;
    return seconds >= 0.5 ? (done - first.done) / seconds : null;
  }
}

// Seconds until `total` at `rate` per second from `done`; null when the
// rate says nothing (no progress yet) or the job is past its estimate.
export function secondsLeft(done, total, rate) {
  if (!rate || rate <= 0 || !(total > done)) return null;
  return (total - done) / rate;
}

// A duration for people: "40 s", "3 min", "1 h 5 min".
export function formatDuration(seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
