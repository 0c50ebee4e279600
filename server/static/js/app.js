// The study page: turns the session's trial list into screens (jsPsych-like), saves every
// answer through the queue, and resumes at the next unanswered trial after a reload.
import { Api, ApiError, withRetry, sleep } from './api.js';
import { Store } from './storage.js';
import { Outbox, SaveQueue } from './queue.js';
import { ImageLoader, ImageLoadError } from './preload.js';
import { runTrial } from './trial.js';
import * as screens from './screens.js';

const AHEAD = 5; // main trials preloaded ahead of the current one
const root = document.getElementById('app');
const statusBar = document.getElementById('status-bar');
const experiment = root.dataset.experiment;
const store = new Store(experiment);

function credentialsFromFragment() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const sessionId = params.get('s');
  const token = params.get('t');
  if (!sessionId || !token) return null;
  // participant: who consented (the consent page offers "continue" only to the same person);
  // entry: the encrypted entry link, so a lost session can go back to it with its ids.
  return { session_id: sessionId, token, participant: params.get('p') || '', entry: params.get('e') || '' };
}

function entryLink() {
  const saved = store.credentials();
  const entry = saved && saved.entry;
  return entry ? `${root.dataset.entry}?e=${encodeURIComponent(entry)}` : root.dataset.entry;
}

function showStatus(text) {
  statusBar.textContent = text;
  statusBar.hidden = !text;
}

function lostSession(title, text, href = entryLink()) {
  const main = screens.message(root, 'no-session', title, text);
  main.then((node) => {
    const link = screens.el('a', '', 'Open the study link again');
    link.id = 'reopen-link';
    link.href = href;
    node.append(link);
  });
}

function timedOut(detail) {
  return screens.message(root, 'timed-out', 'Your session timed out', [
    'You were away for too long, and your trials were given to someone else' +
    (detail ? ` (${detail})` : '') + '.',
    'The answers you gave are saved. Please return the study on your platform (you will not ' +
    'be penalised for this) or contact the researchers.']);
}

class Study {
  constructor(api, state, task) {
    this.api = api;
    this.state = state;
    this.task = task; // the task type's module: render, example
    this.sid = state.session_id;
    this.progress = { ...store.progress(this.sid) };
    this.focusLost = 0;
    this.outbox = new Outbox(api, store, this.sid);
    this.loader = new ImageLoader(state.image_base, {
      onRetry: (id, attempt) => this.log('image_retry', { image_id: id.slice(0, 200), attempt }),
    });
    this.queue = new SaveQueue(api, store, this.sid, {
      onChange: (queue) => this.showQueue(queue),
      onFatal: (error, item) => this.saveFailed(error, item),
      onDrop: (item, error) => this.log('response_dropped', { trial_index: item.trial_index, error: error.message.slice(0, 300) }),
    });
  }

  save() { store.setProgress(this.sid, this.progress); }

  /** Log an event; it waits in the outbox (localStorage) until the server has it. */
  log(kind, payload = {}) { this.outbox.post('/events', { kind, payload, client_ms: performance.now() }); }

  showQueue(queue) {
    if (queue.length && queue.lastError) {
      showStatus(`${queue.length} answer(s) not saved yet (${queue.lastError}). They are kept in this ` +
        'browser and sent automatically; you can go on.');
    } else {
      showStatus('');
    }
  }

  saveFailed(error, item) {
    this.log('save_failed', { status: error.status, trial_index: item.trial_index, error: error.message.slice(0, 300) });
    if (error.status === 409 && error.body.expected_trial_index !== undefined) {
      // The server misses an earlier answer: start again from the first one it lacks.
      store.set(`${this.sid}:queue`, []);
      this.progress.next_index = error.body.expected_trial_index;
      this.save();
      window.location.reload();
      return;
    }
    if (error.status === 401 || error.status === 404) {
      lostSession('Session not found', 'This study session is not known to the server.');
    } else if (error.status === 403 && error.body.reason === 'timed_out') {
      window.location.reload(); // the state then says what the stored answers are owed
    } else if (error.status === 403 && error.body.reason === 'full') {
      timedOut(error.message);
    } else {
      screens.message(root, 'session-ended', 'This session has ended', error.message);
    }
  }

  watchAttention() {
    window.addEventListener('blur', () => { this.focusLost += 1; this.log('focus_lost'); });
    window.addEventListener('focus', () => this.log('focus_returned'));
    document.addEventListener('visibilitychange', () => this.log(`visibility_${document.visibilityState}`));
    const banner = screens.el('div', 'fs-banner');
    banner.id = 'fs-banner';
    banner.hidden = true;
    banner.append(screens.el('span', '', 'You left fullscreen. Please return to fullscreen. '));
    const back = screens.el('button', '', 'Return to fullscreen');
    back.type = 'button';
    back.addEventListener('click', () => document.documentElement.requestFullscreen().catch(() => {}));
    banner.append(back);
    document.body.prepend(banner); // in the flow above the study: it never covers the question
    document.addEventListener('fullscreenchange', () => {
      const inside = Boolean(document.fullscreenElement);
      this.log(inside ? 'fullscreen_enter' : 'fullscreen_exit');
      banner.hidden = inside;
      document.body.classList.toggle('has-banner', !inside);
    });
    this.watchWindowSize();
  }

  /** A window shrunk below the minimum mid-study is covered by a message until it is enlarged. */
  watchWindowSize() {
    const cover = screens.el('div', 'too-small');
    cover.id = 'too-small';
    cover.hidden = true;
    const box = screens.el('main', 'card');
    const text = screens.el('p', '');
    box.append(screens.el('h1', '', 'Window too small'), text);
    cover.append(box);
    document.body.append(cover);
    const [minW, minH] = this.state.min_window;
    const check = () => {
      const small = !screens.windowLargeEnough(this.state.min_window);
      if (small && cover.hidden) this.log('window_too_small', { width: window.innerWidth, height: window.innerHeight });
      cover.hidden = !small;
      text.textContent = `Your browser window is ${window.innerWidth} x ${window.innerHeight} pixels; the ` +
        `study needs at least ${minW} x ${minH}. Please make the window larger (or return to ` +
        'fullscreen) to go on.';
    };
    window.addEventListener('resize', check);
    check();
  }

  async drain() {
    if (!this.queue.length) return;
    const timer = setTimeout(() => screens.message(root, 'saving', 'Saving your answers...',
      'Please keep this page open; your answers are being sent to the server.'), 400);
    await this.queue.drained();
    clearTimeout(timer);
  }

  async refresh() {
    this.state = await withRetry(() => this.api.state(), { onWait: () => showStatus('Reconnecting to the server...') });
    showStatus('');
    return this.state;
  }

  header(text, counter) {
    const bar = screens.el('div', 'trial-header');
    bar.append(screens.el('span', 'trial-count', text));
    if (counter !== undefined) {
      const c = screens.el('span', 'counter', `Correct answers: ${counter}`);
      c.id = 'counter';
      bar.append(c);
    }
    return bar;
  }

  async trial(trial, index, header, onCorrect) {
    for (;;) {
      const ready = this.loader.preload([trial]);
      const slow = setTimeout(() => screens.message(root, 'loading', 'Loading images...', 'One moment please.'), 500);
      try {
        await ready;
        clearTimeout(slow);
        return await runTrial(root, trial, this.task, {
          loader: this.loader, timing: this.state.timing, words: this.state.words, header,
          focusCounter: () => this.focusLost,
          onAnswer: (answer) => {
            const reply = this.queue.push({ trial_index: index, ...answer });
            this.progress.next_index = index + 1;
            this.save();
            return reply.then((result) => {
              if (result && result.correct) onCorrect();
              return result;
            });
          },
        });
      } catch (error) {
        clearTimeout(slow);
        if (!(error instanceof ImageLoadError)) throw error;
        this.log('image_failed', { message: error.message.slice(0, 300) });
        await screens.message(root, 'image-error', 'Images could not be loaded',
          [error.message, 'Please check your internet connection and try again.'], 'Try again');
      }
    }
  }

  async practice() {
    const trials = this.state.practice;
    const n = trials.length;
    this.loader.preload(trials).catch(() => {});
    while (this.state.main_offset === null && n > 0 && this.state.stage === 'practice') {
      // The server's next step (experiments/study/progress.py); the page has drained its queue first.
      const step = this.state.next;
      const attempt = step.attempt;
      let position = step.slot;
      if (position === 0) this.progress.attempt_correct = 0;
      const order = this.state.practice_order; // a repetition shows the trials reshuffled
      for (; position < n; position += 1) {
        const header = this.header(`Practice trial ${position + 1} of ${n}` +
          (attempt ? ` (attempt ${attempt + 1})` : ''));
        await this.trial(trials[order[position]], attempt * n + position, header, () => {
          this.progress.attempt_correct = (this.progress.attempt_correct || 0) + 1;
        });
      }
      await this.drain();
      await this.refresh();
      if (this.state.main_offset !== null) {
        this.log('practice_passed', { attempts: this.state.practice_attempts });
        const said = this.state.messages['practice-passed']; // experiments.study.instructions
        await screens.message(root, 'practice-passed', said.title, [said.text], said.button);
      } else if (this.state.stage === 'practice') {
        const got = this.progress.attempt_correct;
        const said = this.state.messages['practice-failed'];
        await screens.message(root, 'practice-failed', said.title,
          [said.text.replace('{correct}', got ?? 'some')], said.button);
        this.progress.next_index = this.state.next_index;
        this.save();
      }
    }
  }

  async mainBlock() {
    const trials = this.state.main;
    const offset = this.state.main_offset;
    const total = trials.length;
    let correct = Math.max(this.state.answered_correct_main, this.progress.correct_main || 0);
    for (let j = Math.max(0, this.progress.next_index - offset); j < total; j += 1) {
      this.loader.preload(trials.slice(j + 1, j + 1 + AHEAD)).catch(() => {});
      const header = this.header(`Trial ${j + 1} of ${total}`, correct);
      await this.trial(trials[j], offset + j, header, () => {
        correct += 1;
        this.progress.correct_main = correct;
        const counter = header.querySelector('#counter');
        if (counter) counter.textContent = `Correct answers: ${correct}`;
      });
    }
  }

  async complete() {
    if (this.state.feedback_form && this.progress.feedback === undefined) {
      this.progress.feedback = await screens.feedbackForm(root);
      this.save();
    }
    // Events and the instruction time first, but a dead outbox must not hold up the payment.
    await Promise.race([this.outbox.drained(), sleep(5000)]);
    for (let tries = 0; ; tries += 1) {
      await this.drain();
      try {
        const result = await withRetry(() => this.api.complete(this.progress.feedback),
          { onWait: () => showStatus('Reconnecting to the server to finish...') });
        showStatus('');
        this.progress.completion_code = result.completion_code;
        this.save();
        this.log('completion_shown');
        return screens.finish(root, result.completion_code, result.completion, result.status);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 409 || tries > 5) throw error;
        await sleep(1000);
      }
    }
  }

  finish() {
    return screens.finish(root, this.state.completion_code || '', this.state.completion,
      this.state.status, this.state.practice_max_attempts);
  }

  async run() {
    this.watchAttention();
    this.log('page_load', { next_index: this.state.next_index, queued: this.queue.length });
    if (this.state.stage === 'done') return this.finish();
    if (this.state.status === 'timed_out') {
      return this.state.timed_out ? screens.timedOut(root, this.state.timed_out, this.state.completion)
        : timedOut('');
    }
    if (this.state.status !== 'in_progress') {
      return screens.message(root, 'session-ended', 'This session has ended',
        `This session is ${this.state.status.replace('_', ' ')}. Thank you for your time.`);
    }
    if (this.queue.length && this.state.main_offset === null) {
      await this.drain(); // the end of a practice attempt must be confirmed by the server
      await this.refresh();
    }
    this.progress.next_index = Math.max(this.state.next_index, this.queue.lastIndex + 1);
    this.save();
    if (!this.progress.setup_done || !document.fullscreenElement) {
      await screens.screenCheck(root, this.state.min_window, (kind, payload) => this.log(kind, payload));
      this.progress.setup_done = true;
      this.save();
    }
    this.loader.preload(this.state.practice).catch(() => {});
    if (!this.progress.instructions_done) {
      // The study's pages, then the built-in ones (experiments/study/instructions.py), from the server.
      const seconds = await screens.instructions(root, this.state.instructions, this.loader,
        this.state.practice[0], (loader, stimulus) => this.task.example(loader, stimulus, this.state.words));
      this.progress.instructions_done = true;
      this.save();
      this.outbox.post('/instructions', { seconds });
    }
    await this.practice();
    if (this.state.stage === 'done') return this.finish();
    await this.mainBlock();
    return this.complete();
  }
}

async function main() {
  let credentials = credentialsFromFragment();
  if (credentials) {
    store.setCredentials(credentials);
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  } else {
    // the consent page's "continue" names the participant whose session this tab takes up
    const named = new URLSearchParams(window.location.hash.slice(1)).get('p');
    credentials = store.credentials(named);
  }
  if (!credentials) {
    lostSession('Session not found', 'This browser has no session of this study. Please start it from your study link.');
    return;
  }
  const api = new Api(root.dataset.api, credentials.session_id, credentials.token);
  let state;
  try {
    state = await withRetry(() => api.state(), { onWait: () => showStatus('Connecting to the server...') });
    showStatus('');
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 401)) {
      const href = entryLink();
      store.forgetCredentials(credentials);
      lostSession('Session not found', 'This session is not known to the server (or it was started again elsewhere).', href);
      return;
    }
    throw error;
  }
  // Each task type is one module (its `page_script`, served as tasks/<type>.js), loaded by name.
  if (!/^[a-z][a-z0-9_]*$/.test(state.task_type)) throw new Error(`unknown task type ${state.task_type}`);
  const task = await import(`./tasks/${state.task_type}.js`);
  window.interpsyStudy = new Study(api, state, task);
  await window.interpsyStudy.run();
}

main().catch((error) => {
  console.error(error);
  screens.message(root, 'error', 'Something went wrong',
    [String(error && error.message ? error.message : error), 'Your answers so far are saved. Please reload the page to continue.']);
});
