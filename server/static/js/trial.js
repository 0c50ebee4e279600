// One 2-AFC trial on IMI's screen: min references left, max references right, queries a (upper)
// and b (lower) in the centre with three confidence buttons each. Onset and RT use the
// performance.now() clock (requestAnimationFrame and event timestamps).
import { sleep } from './api.js';

const CONFIDENCE = [[3, 'Very sure'], [2, 'Fairly sure'], [1, 'Not sure']];
// Keyboard answers: upper image 1 2 3, lower image 8 9 0 (very, fairly, not sure).
const KEYS = { a: ['1', '2', '3'], b: ['8', '9', '0'] };
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function picture(loader, id, className) {
  const img = el('img', className);
  img.alt = '';
  img.draggable = false;
  img.decoding = 'sync';
  img.src = loader.url(id);
  return img;
}

function grid(loader, ids, label, side) {
  const section = el('section', `refs refs-${side}`);
  section.append(el('h3', 'refs-label', label));
  const cells = el('div', 'grid');
  ids.forEach((id) => cells.append(picture(loader, id, 'ref')));
  section.append(cells);
  return section;
}

function queryRow(loader, trial, which, buttons) {
  const row = el('div', `query query-${which}`);
  row.dataset.query = which;
  row.append(picture(loader, which === 'a' ? trial.stimulus.query_a : trial.stimulus.query_b, 'query-img'));
  const group = el('div', 'answer');
  group.append(el('span', 'answer-label', which === 'a' ? 'Upper image' : 'Lower image'));
  CONFIDENCE.forEach(([confidence, text], i) => {
    const button = el('button', 'choice', text);
    const key = el('kbd', 'key', KEYS[which][i]);
    key.setAttribute('aria-hidden', 'true');
    button.append(key);
    button.dataset.key = KEYS[which][i];
    button.setAttribute('aria-label', `${which === 'a' ? 'Upper' : 'Lower'} image: ${text} (key ${KEYS[which][i]})`);
    button.type = 'button';
    button.disabled = true;
    button.dataset.choice = which;
    button.dataset.confidence = String(confidence);
    buttons.push(button);
    group.append(button);
  });
  row.append(group);
  return row;
}

const PENDING_MS = 3000; // how long feedback waits for the server before the page goes on

/**
 * Show `trial` in `container`; resolves after the participant pressed Continue.
 * `onAnswer(answer)` runs at the click (so the answer is saved at once) and returns a promise
 * of the server's scoring ({correct, answer_key}, or null): the page holds no answer key,
 * so feedback comes from the server. Offline, the participant may go on after PENDING_MS.
 */
export async function runTrial(container, trial, { loader, timing, header, onAnswer, focusCounter }) {
  await loader.preload([trial]);
  const buttons = [];
  const screen = el('div', 'trial hidden-until-ready');
  screen.dataset.trialId = String(trial.trial_id);
  if (header) screen.append(header);
  const centre = el('section', 'queries');
  centre.append(el('p', 'question', 'Which image in the centre fits the examples on the right better?'));
  centre.append(queryRow(loader, trial, 'a', buttons), queryRow(loader, trial, 'b', buttons));
  const layout = el('div', 'layout');
  layout.append(grid(loader, trial.stimulus.references_min, 'Examples: low', 'min'), centre,
    grid(loader, trial.stimulus.references_max, 'Examples: high', 'max'));
  const feedback = el('p', 'feedback');
  feedback.setAttribute('role', 'status');
  const proceed = el('button', 'continue', 'Continue');
  proceed.type = 'button';
  proceed.hidden = true;
  screen.append(layout, feedback, proceed);
  container.replaceChildren(screen);
  // Shown only when every image on it is decoded (from the preloaded cache: immediate).
  await Promise.all([...screen.querySelectorAll('img')].map((img) => img.decode()));
  await nextFrame();
  screen.classList.remove('hidden-until-ready');
  const onset = await nextFrame(); // the frame that first shows the stimulus
  const focusAtOnset = focusCounter ? focusCounter() : 0;
  const lockRemaining = Math.max(0, onset + timing.button_lock_ms - performance.now());
  setTimeout(() => buttons.forEach((button) => { button.disabled = false; }), lockRemaining);

  const answer = await new Promise((resolve) => {
    const onKey = (event) => {
      if (event.repeat || event.ctrlKey || event.altKey || event.metaKey) return;
      const button = buttons.find((b) => b.dataset.key === event.key);
      if (button && !button.disabled) button.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    };
    document.addEventListener('keydown', onKey);
    buttons.forEach((button) => button.addEventListener('click', (event) => {
      if (button.disabled) return;
      document.removeEventListener('keydown', onKey);
      buttons.forEach((b) => { b.disabled = true; });
      button.classList.add('chosen');
      const responseMs = event.timeStamp;
      resolve({
        trial_id: trial.trial_id,
        answer: { choice: button.dataset.choice, confidence: Number(button.dataset.confidence) },
        rt_ms: Math.max(0, responseMs - onset),
        stim_onset_ms: onset,
        response_ms: responseMs,
        extra: { focus_lost: focusCounter ? focusCounter() - focusAtOnset : 0,
                 fullscreen: Boolean(document.fullscreenElement) },
      });
    }));
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
  if (reply) {
    screen.querySelector(`.query-${reply.answer_key}`).classList.add('is-correct');
    feedback.textContent = correct ? 'Correct!' : 'Wrong.';
    feedback.className = `feedback ${correct ? 'good' : 'bad'}`;
    await sleep(timing.feedback_ms);
    screen.querySelector(`.query-${reply.answer_key}`).classList.remove('is-correct');
    feedback.textContent = '';
    feedback.className = 'feedback';
  } else {
    feedback.textContent = reply === null ? 'Your answer was recorded.'
      : 'Your answer is kept in this browser and will be sent when the connection is back.';
    feedback.className = 'feedback pending';
  }
  proceed.hidden = false;
  proceed.focus();
  await new Promise((resolve) => proceed.addEventListener('click', resolve, { once: true }));
  return { answer, correct };
}
