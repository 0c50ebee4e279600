// The save queue: answers are kept in localStorage until the server confirms them, sent in
// order (the server refuses gaps), retried with backoff while offline or on server errors.
import { ApiError, sleep } from './api.js';

export class SaveQueue {
  constructor(api, store, sessionId, { onChange = () => {}, onFatal = () => {}, onDrop = () => {} } = {}) {
    this.api = api;
    this.store = store;
    this.key = `${sessionId}:queue`;
    this.items = store.get(this.key, []);
    this.onChange = onChange;
    this.onFatal = onFatal;
    this.onDrop = onDrop;
    this.failures = 0;
    this.running = false;
    this.waiters = [];
    this.wake = null;
    this.lastError = null;
    window.addEventListener('online', () => this.kick(true));
  }

  get length() { return this.items.length; }
  get lastIndex() { return this.items.length ? this.items[this.items.length - 1].trial_index : -1; }

  persist() {
    if (!this.store.set(this.key, this.items)) this.lastError = 'browser storage is full or blocked';
    this.onChange(this);
  }

  push(payload) {
    if (this.items.some((item) => item.trial_index === payload.trial_index)) return;
    this.items.push(payload);
    this.persist();
    this.kick(true);
  }

  kick(resetBackoff = false) {
    if (resetBackoff) this.failures = 0;
    if (this.wake) this.wake();
    if (!this.running) this.run();
  }

  /** Resolves when every queued answer is confirmed by the server. */
  drained() {
    if (!this.items.length) return Promise.resolve();
    return new Promise((resolve) => { this.waiters.push(resolve); this.kick(true); });
  }

  async pause(ms) {
    await Promise.race([sleep(ms), new Promise((resolve) => { this.wake = resolve; })]);
    this.wake = null;
  }

  async run() {
    this.running = true;
    while (this.items.length) {
      const item = this.items[0];
      try {
        const result = await this.api.response(item);
        this.items.shift();
        this.failures = 0;
        this.lastError = null;
        this.lastResult = result;
        this.persist();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.retryable) {
          this.failures += 1;
          this.lastError = error.status === 0 ? 'no connection to the server' : error.message;
          this.onChange(this);
          const wait = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 5));
          await this.pause(wait * (0.75 + Math.random() * 0.5));
          continue;
        }
        if (error.status === 409 && error.body.expected_trial_index === undefined) {
          // Already stored with another answer (e.g. sent from another tab): the stored one wins.
          this.items.shift();
          this.persist();
          this.onDrop(item, error);
          continue;
        }
        if (error.status === 400 || (error.status === 409 && error.body.expected_trial_index > item.trial_index)) {
          this.items.shift();
          this.persist();
          this.onDrop(item, error);
          continue;
        }
        this.running = false;
        this.onFatal(error, item);
        return;
      }
    }
    this.running = false;
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((resolve) => resolve());
  }
}
