// Pieces shared by the task types whose answer is one of two images (a upper, b lower) with a
// confidence of 1-3: the image rows with their three buttons, and the reference grids.
export const CONFIDENCE = [[3, 'Very sure'], [2, 'Fairly sure'], [1, 'Not sure']];

import { el } from '../screens.js';

export { el };

export function picture(loader, id, className) {
  const img = el('img', className);
  img.alt = '';
  img.draggable = false;
  img.decoding = 'sync';
  img.src = loader.url(id);
  return img;
}

export function grid(loader, ids, label, side) {
  const section = el('section', `refs refs-${side}`);
  section.append(el('h3', 'refs-label', label));
  const cells = el('div', 'grid');
  ids.forEach((id) => cells.append(picture(loader, id, 'ref')));
  section.append(cells);
  return section;
}

/** The row of image `which` ('a' upper, 'b' lower) with its three answer buttons; each button
 * carries its answer ({choice, confidence}) and its key (`keys`: very, fairly, not sure, as the
 * server's task type sends them), and is pushed onto `buttons`. */
export function queryRow(loader, id, which, buttons, keys) {
  const row = el('div', `query query-${which}`);
  row.dataset.query = which;
  row.append(picture(loader, id, 'query-img'));
  const group = el('div', 'answer');
  const name = which === 'a' ? 'Upper' : 'Lower';
  group.append(el('span', 'answer-label', `${name} image`));
  CONFIDENCE.forEach(([confidence, text], i) => {
    const button = el('button', 'choice', text);
    const key = el('kbd', 'key', keys[i]);
    key.setAttribute('aria-hidden', 'true');
    button.append(key);
    button.dataset.key = keys[i];
    button.setAttribute('aria-label', `${name} image: ${text} (key ${keys[i]})`);
    button.type = 'button';
    button.disabled = true;
    button.dataset.choice = which;
    button.dataset.confidence = String(confidence);
    button.dataset.answer = JSON.stringify({ choice: which, confidence });
    buttons.push(button);
    group.append(button);
  });
  row.append(group);
  return row;
}

/** The centre column: the question above the two image rows (`words`: the task type's). */
export function queries(loader, words, stimulus, buttons) {
  const centre = el('section', 'queries');
  centre.append(el('p', 'question', words.question));
  centre.append(queryRow(loader, stimulus.query_a, 'a', buttons, words.keys.a),
    queryRow(loader, stimulus.query_b, 'b', buttons, words.keys.b));
  return centre;
}

/** The element feedback marks for an answer key (the right image's row). */
export function target(screen, answerKey) {
  return screen.querySelector(`.query-${answerKey}`);
}

export function smallGrid(loader, ids, label) {
  const s = el('div', 'example-side');
  s.append(el('span', 'refs-label', label));
  const g = el('div', 'grid small');
  ids.slice(0, 9).forEach((id) => { const i = el('img', 'ref'); i.alt = ''; i.src = loader.url(id); g.append(i); });
  s.append(g);
  return s;
}
