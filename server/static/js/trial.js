// The trial runner (jsPsych's idea): a task type's module (tasks/<type>.js) draws the screen and
// its answer buttons; the runner times the onset, locks the buttons, takes the answer (click or
// key), saves it at once and shows the server's feedback. Onset and RT use the
// performance.now() clock (requestAnimationFrame and event timestamps).
import { sleep } from './api.js';
import { el } from './screens.js';

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

const PENDING_MS = 3000; // how long feedback waits for the server before the page goes on

/**
 * Show `trial` in `container`; resolves after the participant pressed Continue.
 * `onAnswer(answer)` runs at the click (so the answer is saved at once) and returns a promise
 * of the server's scoring ({correct, answer_key}, or null): the page holds no answer key,
 * so feedback comes from the server. Offline, the participant may go on after PENDING_MS.
 */
export async function runTrial(container, trial, task, { loader, timing, words, header, onAnswer, focusCounter }) {
  await loader.preload([trial]);
  const screen = el('div', 'trial hidden-until-ready');
  screen.dataset.trialId = String(trial.trial_id);
  screen.dataset.type = trial.type;
  if (header) screen.append(header);
  const view = task.render(loader, trial.stimulus, words);
  const { buttons } = view;
  const feedback = el('p', 'feedback');
  feedback.setAttribute('role', 'status');
  const proceed = el('button', 'continue', 'Continue');
  proceed.type = 'button';
  proceed.hidden = true;
  screen.append(view.element, feedback, proceed);
  container.replaceChildren(screen);
  // Shown only when every image on it is decoded (from the preloaded cache: immediate).
  await Promise.all([...screen.querySelectorAll('img')].map((img) => img.decode()));
  await nextFrame();
  screen.classList.remove('hidden-until-ready');
  // A type with a timed presentation (view.present) runs it first; its answer screen's first
  // frame is the onset, and what it showed goes into the answer.
  const presented = view.present ? await view.present(nextFrame) : null;
  const onset = presented ? presented.onset : await nextFrame(); // the answer screen's first frame
  const shown = presented ? presented.shown : {};
  const focusAtOnset = focusCounter ? focusCounter() : 0;
  const lockRemaining = Math.max(0, onset + timing.button_lock_ms - performance.now());
  setTimeout(() => buttons.forEach((button) => { button.disabled = false; }), lockRemaining);

  const answer = await new Promise((resolve) => {
    let expiry = null;
    const finish = (given, responseMs) => {
      document.removeEventListener('keydown', onKey);
      clearTimeout(expiry);
      buttons.forEach((b) => { b.disabled = true; });
      resolve({
        trial_id: trial.trial_id,
        answer: { ...given, ...shown },
        rt_ms: Math.max(0, responseMs - onset),
        stim_onset_ms: onset,
        response_ms: responseMs,
        extra: { focus_lost: focusCounter ? focusCounter() - focusAtOnset : 0,
                 fullscreen: Boolean(document.fullscreenElement) },
      });
    };
    const onKey = (event) => {
      if (event.repeat || event.ctrlKey || event.altKey || event.metaKey) return;
      const button = buttons.find((b) => b.dataset.key === event.key);
      if (button && !button.disabled) button.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    };
    document.addEventListener('keydown', onKey);
    buttons.forEach((button) => button.addEventListener('click', (event) => {
      if (button.disabled) return;
      button.classList.add('chosen');
      finish(JSON.parse(button.dataset.answer), event.timeStamp);
    }));
    // A response window (view.timeoutMs): no answer in it is the type's `noAnswer`.
    if (view.timeoutMs) {
      expiry = setTimeout(() => finish(view.noAnswer, performance.now()),
        Math.max(0, onset + view.timeoutMs - performance.now()));
    }
  });
  const scored = onAnswer(answer);
  await sleep(timing.feedback_delay_ms);
  const late = setTimeout(() => {
    feedback.textContent = 'Saving your answer...';
    feedback.className = 'feedback pending';
  }, 300);
  const reply = await Promise.race([scored, sleep(PENDING_MS).then(() => undefined)]);
  clearTimeout(late);
  const correct = Boolean(reply && reply.correct);
  // The server says whether this trial shows right or wrong (the study may keep the main
  // block without).
  if (reply && !trial.feedback) {
    feedback.textContent = '';
    feedback.className = 'feedback';
  } else if (reply) {
    const marked = view.target(screen, reply.answer_key);
    if (marked) marked.classList.add('is-correct');
    feedback.textContent = correct ? 'Correct!' : 'Wrong.';
    feedback.className = `feedback ${correct ? 'good' : 'bad'}`;
    await sleep(timing.feedback_ms);
    if (marked) marked.classList.remove('is-correct');
    feedback.textContent = '';
    feedback.className = 'feedback';
  } else {
    feedback.textContent = reply === null ? 'Your answer was recorded.'
      : 'Your answer is kept in this browser and will be sent when the connection is back.';
    feedback.className = 'feedback pending';
  }
  if (reply !== undefined && timing.auto_continue) return { answer, correct }; // saved: go on
  proceed.hidden = false;
  proceed.focus();
  await new Promise((resolve) => proceed.addEventListener('click', resolve, { once: true }));
  return { answer, correct };
}
