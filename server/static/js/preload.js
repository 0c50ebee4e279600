// Image preloading with bounded concurrency, decode() and retry; waits for the network to come
// back instead of giving up while offline, and fails with a clear error otherwise.
import { sleep } from './api.js';

export class ImageLoadError extends Error {}

export class ImageLoader {
  /** A trial's images are its `images` (public ids, from the server). */
  constructor(base, { concurrency = 6, retries = 4, timeoutMs = 20000, onRetry = () => {} } = {}) {
    this.base = base;
    this.concurrency = concurrency;
    this.retries = retries;
    this.timeoutMs = timeoutMs;
    this.onRetry = onRetry;
    this.cache = new Map();
    this.active = 0;
    this.waiting = [];
    this.bytesHint = 0;
  }

  url(id) { return this.base + encodeURIComponent(id).replace(/%2F/g, '/'); }

  async slot() {
    if (this.active < this.concurrency) { this.active += 1; return; }
    await new Promise((resolve) => this.waiting.push(resolve));
    this.active += 1;
  }

  release() {
    this.active -= 1;
    const next = this.waiting.shift();
    if (next) next();
  }

  once(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.decoding = 'async';
      const timer = setTimeout(() => reject(new Error('timed out')), this.timeoutMs);
      img.src = url;
      img.decode().then(() => { clearTimeout(timer); resolve(img); },
        (error) => { clearTimeout(timer); reject(error); });
    });
  }

  async fetchOne(id) {
    await this.slot();
    try {
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await this.once(this.url(id));
        } catch (error) {
          if (!navigator.onLine) {
            // Offline is not the image's fault: wait for the network without using up retries.
            await new Promise((resolve) => window.addEventListener('online', resolve, { once: true }));
            attempt -= 1;
            continue;
          }
          if (attempt + 1 >= this.retries) {
            throw new ImageLoadError(`the image ${id} could not be loaded (${error.message || error})`);
          }
          this.onRetry(id, attempt + 1);
          await sleep(500 * 2 ** attempt);
        }
      }
    } finally {
      this.release();
    }
  }

  /** Load and decode one image; the same promise for repeated requests. */
  load(id) {
    if (!this.cache.has(id)) {
      const promise = this.fetchOne(id);
      promise.catch(() => this.cache.delete(id)); // a later request may try again
      this.cache.set(id, promise);
    }
    return this.cache.get(id);
  }

  /** Every image of these trials loaded and decoded. */
  preload(trials) {
    return Promise.all(trials.flatMap((trial) => trial.images.map((id) => this.load(id))));
  }
}
